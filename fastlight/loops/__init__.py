"""Lightning's `lightning.pytorch.loops` names for fastlight's loops, which live in fastlight/trainer (fit_loop.py,
evaluation.py, with Lightning's loop attributes as views: loop_views.py). `_EvaluationLoop` / `_PredictionLoop` are the
classes of trainer.validate_loop / test_loop / predict_loop; `loops.evaluation_loop` and `loops.prediction_loop` are
their module itself (trainer/evaluation.py). This package also holds the data fetchers the loops use (fetchers.py).
Nothing from the trainer is imported at the top: the trainer's modules import from this package."""
from typing import Any


def __getattr__(name: str) -> Any:
    if name in ("_EvaluationLoop", "_PredictionLoop"):
        from fastlight.trainer import evaluation

        return getattr(evaluation, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
