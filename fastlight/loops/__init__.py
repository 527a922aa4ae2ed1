"""Lightning's `lightning.pytorch.loops` names.

`progress`: the counter dataclasses (the real ones: fastlight's loops move them). `_Loop`: the base for a loop written
in Lightning's style. fastlight runs its own loops (fastlight/trainer/fit_loop.py, evaluation.py) rather than a nest of
loop objects; `_FitLoop` and `_TrainingEpochLoop` name the fit loop and the view of its epoch counters
(trainer/loop_views.py), imported on first use (the trainer imports this package's counters).
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
    # imported here, not at the top: the trainer imports this package's counters
    if name == "_FitLoop":
        from fastlight.trainer.fit_loop import FitLoop

        return FitLoop
    if name == "_TrainingEpochLoop":
        from fastlight.trainer.loop_views import TrainingEpochLoopView

        return TrainingEpochLoopView
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
