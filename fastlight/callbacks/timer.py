"""Timer: track time spent in train/validate/test and stop fit once a duration is used up."""
import re
import time
from datetime import timedelta
from typing import Any, Dict, Optional, Union

from fastlight.utilities.enums import LightningEnum
from fastlight.utilities.exceptions import _MisconfigurationValueError
from fastlight.utilities.rank_zero import rank_zero_info

from . import _trainer_access as access
from .callback import Callback

# Lightning's RunningStage values, the keys of the saved state
_STAGES = ("train", "sanity_check", "validate", "test", "predict")


class Interval(LightningEnum):
    """When Timer checks the time limit: after every training step or every training epoch."""

    step = "step"
    epoch = "epoch"


class Timer(Callback):
    """Args:
        duration: "DD:HH:MM:SS", a timedelta or a dict of timedelta kwargs; None only measures.
        interval: check after every training "step" or every "epoch".
        verbose: log when the time limit stops training.

    The elapsed training time is saved in checkpoints and counted on after a resume.
    """

    def __init__(self, duration: Optional[Union[str, timedelta, Dict[str, int]]] = None, interval: str = "step", verbose: bool = True) -> None:
        if isinstance(duration, str):
            match = re.fullmatch(r"(\d+):(\d\d):(\d\d):(\d\d)", duration.strip())
            if not match:
                raise ValueError(f"`Timer(duration={duration!r})` is not a valid duration. Expected a string in the format DD:HH:MM:SS.")
            duration = timedelta(days=int(match.group(1)), hours=int(match.group(2)), minutes=int(match.group(3)), seconds=int(match.group(4)))
        elif isinstance(duration, dict):
            duration = timedelta(**duration)
        elif duration is not None and not isinstance(duration, timedelta):
            raise TypeError(f"Timer(duration=...) takes a str, timedelta or dict, got {type(duration).__name__}")
        interval = getattr(interval, "value", interval)
        if interval not in ("step", "epoch"):
            raise _MisconfigurationValueError(f"Unsupported parameter value `Timer(interval={interval})`. Possible choices are: step, epoch")
        self._duration = duration.total_seconds() if duration is not None else None
        self._interval = interval
        self._verbose = verbose
        self._start_time: Dict[str, Optional[float]] = dict.fromkeys(_STAGES)
        self._end_time: Dict[str, Optional[float]] = dict.fromkeys(_STAGES)
        self._offset = 0.0

    @staticmethod
    def _stage(stage: Any) -> str:
        stage = getattr(stage, "value", stage)
        if stage not in _STAGES:
            raise ValueError(f"Timer: unknown stage {stage!r}, expected one of {_STAGES}")
        return stage

    def start_time(self, stage: str = "train") -> Optional[float]:
        return self._start_time[self._stage(stage)]

    def end_time(self, stage: str = "train") -> Optional[float]:
        return self._end_time[self._stage(stage)]

    def time_elapsed(self, stage: str = "train") -> float:
        stage = self._stage(stage)
        start, end = self._start_time[stage], self._end_time[stage]
        offset = self._offset if stage == "train" else 0
        if start is None:
            return offset
        if end is None:
            return time.monotonic() - start + offset
        return end - start + offset

    def time_remaining(self, stage: str = "train") -> Optional[float]:
        if self._duration is None:
            return None
        return self._duration - self.time_elapsed(stage)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._start_time["train"] = time.monotonic()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._end_time["train"] = time.monotonic()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._start_time["validate"] = time.monotonic()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self._end_time["validate"] = time.monotonic()

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._start_time["test"] = time.monotonic()

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._end_time["test"] = time.monotonic()

    def on_fit_start(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if self._interval == "step" and self._duration is not None:
            self._check_time_remaining(trainer)

    def on_train_epoch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if self._interval == "epoch" and self._duration is not None:
            self._check_time_remaining(trainer)

    def state_dict(self) -> Dict[str, Any]:
        return {"time_elapsed": {stage: self.time_elapsed(stage) for stage in _STAGES}}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._offset = state_dict.get("time_elapsed", {}).get("train", 0)

    def _check_time_remaining(self, trainer: Any) -> None:
        should_stop = self.time_elapsed() >= self._duration
        should_stop = access.broadcast(trainer, should_stop)  # rank 0's clock decides for all
        trainer.should_stop = trainer.should_stop or should_stop
        if should_stop and self._verbose:
            elapsed = timedelta(seconds=int(self.time_elapsed("train")))
            rank_zero_info(f"Time limit reached. Elapsed time is {elapsed}. Signaling Trainer to stop.")
