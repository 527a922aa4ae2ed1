"""Lightning's `lightning.pytorch.loops` import path over fastlight's loops: `_EvaluationLoop` / `_PredictionLoop`
are the classes of trainer.validate_loop / test_loop / predict_loop, and `loops.evaluation_loop` /
`loops.prediction_loop` are the module that holds them (fastlight/trainer/evaluation.py, the same module object, so
setting a name on it, e.g. `_RICH_AVAILABLE` for the results table, reaches the loop)."""
import sys

from fastlight.trainer import evaluation as _evaluation

_EvaluationLoop = _evaluation.EvaluationLoop
_PredictionLoop = _evaluation.PredictionLoop

evaluation_loop = prediction_loop = _evaluation
sys.modules[__name__ + ".evaluation_loop"] = _evaluation
sys.modules[__name__ + ".prediction_loop"] = _evaluation

__all__ = ["_EvaluationLoop", "_PredictionLoop"]
