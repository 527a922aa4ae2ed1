"""`trainer.state`: what the Trainer is doing, with Lightning's enums (str enums: `trainer.state.fn == "fit"` holds).

    status  TrainerStatus: initializing -> running -> finished | interrupted
    fn      TrainerFn: the entry point running (fit / validate / test / predict), also what setup/teardown receive
    stage   RunningStage: train / sanity_check / validate / test / predict, None between runs

The loops may assign plain strings ("train"); they are stored as the enum member with that value.
"""
from dataclasses import dataclass
from typing import Any, Optional

from fastlight.utilities.enums import LightningEnum


class TrainerStatus(LightningEnum):
    INITIALIZING = "initializing"
    RUNNING = "running"
    FINISHED = "finished"
    INTERRUPTED = "interrupted"

    @property
    def stopped(self) -> bool:
        return self in (self.FINISHED, self.INTERRUPTED)


class TrainerFn(LightningEnum):
    FITTING = "fit"
    VALIDATING = "validate"
    TESTING = "test"
    PREDICTING = "predict"


class RunningStage(LightningEnum):
    TRAINING = "train"
    SANITY_CHECKING = "sanity_check"
    VALIDATING = "validate"
    TESTING = "test"
    PREDICTING = "predict"

    @property
    def evaluating(self) -> bool:
        return self in (self.VALIDATING, self.TESTING, self.SANITY_CHECKING)

    @property
    def dataloader_prefix(self) -> Optional[str]:
        if self in (self.VALIDATING, self.SANITY_CHECKING):
            return "val"
        return self.value


_FIELD_TYPES = {"status": TrainerStatus, "fn": TrainerFn, "stage": RunningStage}


@dataclass
class TrainerState:
    status: TrainerStatus = TrainerStatus.INITIALIZING
    fn: Optional[TrainerFn] = None
    stage: Optional[RunningStage] = None

    def __setattr__(self, name: str, value: Any) -> None:
        kind = _FIELD_TYPES.get(name)
        if kind is not None and value is not None and type(value) is not kind:
            try:
                value = kind(getattr(value, "value", value))
            except ValueError:
                raise ValueError(f"`trainer.state.{name}` must be one of {[m.value for m in kind]}, got {value!r}")\
                    from None
        object.__setattr__(self, name, value)

    @property
    def finished(self) -> bool:
        return self.status == TrainerStatus.FINISHED

    @property
    def stopped(self) -> bool:
        return self.status.stopped
