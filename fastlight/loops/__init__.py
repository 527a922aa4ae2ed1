"""Lightning's `lightning.pytorch.loops` names.

`progress`: the counter dataclasses (the real ones: fastlight's loops move them). `_Loop`: the base for a loop written
in Lightning's style. `fetchers`: the data fetchers the loops use (the `dataloader_iter` step flavour). fastlight runs
its own loops (fastlight/trainer/fit_loop.py, evaluation.py) rather than a nest of loop objects: `_FitLoop` and
`_TrainingEpochLoop` name the fit loop and the view of its epoch counters (trainer/loop_views.py), `_EvaluationLoop` /
`_PredictionLoop` the classes of trainer.validate_loop / test_loop / predict_loop, `loops.evaluation_loop` /
`loops.prediction_loop` are the evaluation module itself (trainer/evaluation.py) and `loops.fit_loop` the fit loop's
(trainer/fit_loop.py). Those are imported on first use, not at the top: the trainer's modules import from this
package (its counters and fetchers).
"""
from typing import Any

from fastlight.loops.loop import _Loop
from fastlight.loops.progress import (
    _BaseProgress,
    _BatchProgress,
    _OptimizationProgress,
    _OptimizerProgress,
    _ProcessedTracker,
    _Progress,
    _ReadyCompletedTracker,
    _SchedulerProgress,
    _StartedTracker,
)


def __getattr__(name: str) -> Any:
    if name == "_FitLoop":
        from fastlight.trainer.fit_loop import FitLoop

        return FitLoop
    if name == "_TrainingEpochLoop":
        from fastlight.trainer.loop_views import TrainingEpochLoopView

        return TrainingEpochLoopView
    if name in ("_EvaluationLoop", "_PredictionLoop"):
        from fastlight.trainer import evaluation

        return getattr(evaluation, name)
    if name in ("fit_loop", "evaluation_loop", "prediction_loop"):  # the loop modules, as attributes of the package
        import importlib

        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
