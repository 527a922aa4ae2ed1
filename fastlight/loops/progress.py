"""Lightning's loop progress counters (`lightning.pytorch.loops.progress`): small dataclasses, the one store of the
fit / evaluation counters.

An event (an epoch, a batch, an optimizer step, a zero_grad, a scheduler step) moves its counters in order: `ready`
when it is about to happen, `started` once its start hooks ran, `processed` once its work is done, `completed` once
its end hooks ran. A checkpoint written part-way through an event so records how far it got; on restart the partial
counts fall back to `completed` (`reset_on_restart`). A `_Progress` keeps two trackers of the same kind: `total` (the
whole run) and `current` (since the last `reset_on_run`, e.g. this epoch).

fastlight's Trainer holds these in `trainer.loop_progress` (trainer/checkpoint_layout.py: FitProgress, EvalProgress);
the fit loop moves them, and `trainer.current_epoch` / `trainer.global_step` are read from them.
"""
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Dict, Type


@dataclass
class _BaseProgress:
    """state_dict / load_state_dict for the counter dataclasses."""

    def state_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.__dict__.update(state_dict)

    @classmethod
    def from_state_dict(cls, state_dict: Dict[str, Any]) -> "_BaseProgress":
        progress = cls()
        progress.load_state_dict(state_dict)
        return progress

    def reset(self) -> None:
        """Every counter back to its start value."""
        raise NotImplementedError(f"{type(self).__name__} does not define `reset`")


@dataclass
class _ReadyCompletedTracker(_BaseProgress):
    """Counts of an event: `ready` (about to run) and `completed` (its end hooks ran)."""

    ready: int = 0
    completed: int = 0

    def reset(self) -> None:
        for f in fields(self):
            setattr(self, f.name, 0)

    def reset_on_restart(self) -> None:
        """Drop the counts of an event that did not complete: each counter back to `completed`."""
        for f in fields(self):
            setattr(self, f.name, self.completed)

    def increment_by(self, n: int) -> None:
        """`n` whole events: every counter moves by `n`."""
        for f in fields(self):
            setattr(self, f.name, getattr(self, f.name) + n)


@dataclass
class _StartedTracker(_ReadyCompletedTracker):
    """`ready`, `started` (its start hooks ran), `completed`."""

    started: int = 0


@dataclass
class _ProcessedTracker(_StartedTracker):
    """`ready`, `started`, `processed` (its work is done, its end hooks not yet run), `completed`."""

    processed: int = 0


@dataclass
class _Progress(_BaseProgress):
    """`total` (over the run) and `current` (since `reset_on_run`) counts of one event, same tracker kind."""

    total: _ReadyCompletedTracker = field(default_factory=_ProcessedTracker)
    current: _ReadyCompletedTracker = field(default_factory=_ProcessedTracker)

    def __post_init__(self) -> None:
        if type(self.total) is not type(self.current):
            raise ValueError(
                "The `total` and `current` instances should be of the same class, got"
                f" {type(self.total).__name__} and {type(self.current).__name__}"
            )

    @classmethod
    def from_defaults(cls, tracker_cls: Type[_ReadyCompletedTracker], **kwargs: int) -> "_Progress":
        """Both trackers of kind `tracker_cls`, each built with `kwargs`."""
        return cls(total=tracker_cls(**kwargs), current=tracker_cls(**kwargs))

    def increment_ready(self) -> None:
        self.total.ready += 1
        self.current.ready += 1

    def increment_started(self) -> None:
        if not isinstance(self.total, _StartedTracker):
            raise TypeError(f"`{type(self.total).__name__}` doesn't have a `started` attribute")
        self.total.started += 1
        self.current.started += 1

    def increment_processed(self) -> None:
        if not isinstance(self.total, _ProcessedTracker):
            raise TypeError(f"`{type(self.total).__name__}` doesn't have a `processed` attribute")
        self.total.processed += 1
        self.current.processed += 1

    def increment_completed(self) -> None:
        self.total.completed += 1
        self.current.completed += 1

    def increment_by(self, n: int) -> None:
        self.total.increment_by(n)
        self.current.increment_by(n)

    def reset(self) -> None:
        self.total.reset()
        self.current.reset()

    def reset_on_run(self) -> None:
        """A new run of the event's loop (e.g. a new epoch for the batch counters): `current` starts over."""
        self.current.reset()

    def reset_on_restart(self) -> None:
        self.current.reset_on_restart()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.total.load_state_dict(state_dict["total"])
        self.current.load_state_dict(state_dict["current"])


@dataclass
class _BatchProgress(_Progress):
    """Batch counters, plus whether the latest batch is the loader's last (what an iterable without len needs)."""

    is_last_batch: bool = False

    def reset(self) -> None:
        super().reset()
        self.is_last_batch = False

    def reset_on_run(self) -> None:
        super().reset_on_run()
        self.is_last_batch = False

    def increment_by(self, n: int, is_last_batch: bool = False) -> None:
        super().increment_by(n)
        self.is_last_batch = is_last_batch

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        super().load_state_dict(state_dict)
        self.is_last_batch = state_dict["is_last_batch"]


@dataclass
class _SchedulerProgress(_Progress):
    """`lr_scheduler.step()` calls: ready and completed only."""

    total: _ReadyCompletedTracker = field(default_factory=_ReadyCompletedTracker)
    current: _ReadyCompletedTracker = field(default_factory=_ReadyCompletedTracker)


@dataclass
class _OptimizerProgress(_BaseProgress):
    """`optimizer.step()` (ready, completed) and `zero_grad` (ready, started, completed) calls."""

    step: _Progress = field(default_factory=lambda: _Progress.from_defaults(_ReadyCompletedTracker))
    zero_grad: _Progress = field(default_factory=lambda: _Progress.from_defaults(_StartedTracker))

    def reset(self) -> None:
        self.step.reset()
        self.zero_grad.reset()

    def reset_on_run(self) -> None:
        self.step.reset_on_run()
        self.zero_grad.reset_on_run()

    def reset_on_restart(self) -> None:
        self.step.reset_on_restart()
        self.zero_grad.reset_on_restart()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.step.load_state_dict(state_dict["step"])
        self.zero_grad.load_state_dict(state_dict["zero_grad"])


@dataclass
class _OptimizationProgress(_BaseProgress):
    """Automatic optimization's counters (`fit_loop.epoch_loop.automatic_optimization.optim_progress`)."""

    optimizer: _OptimizerProgress = field(default_factory=_OptimizerProgress)

    @property
    def optimizer_steps(self) -> int:
        return self.optimizer.step.total.completed

    def reset(self) -> None:
        self.optimizer.reset()

    def reset_on_run(self) -> None:
        self.optimizer.reset_on_run()

    def reset_on_restart(self) -> None:
        self.optimizer.reset_on_restart()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict["optimizer"])
