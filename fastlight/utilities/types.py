"""Type aliases and config types user code annotates with (Lightning keeps them in
`lightning.pytorch.utilities.types`): what a step returns, what a `*_dataloader` hook returns, what
`configure_optimizers` may return, and the normalized LR scheduler config the trainer and callbacks share."""
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Generator, Iterator, List, Mapping, Optional, Protocol, Sequence, Tuple, Type, Union, \
    runtime_checkable

import torch
from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler, ReduceLROnPlateau
from typing_extensions import NotRequired, Required, TypedDict

# --- values ---------------------------------------------------------------------------------------------------------
_NUMBER = Union[int, float]
_METRIC = Union[Tensor, _NUMBER, Any]  # Any: a torchmetrics Metric (torchmetrics stays optional)
# training_step & co. return a loss tensor, a dict with a "loss" key (and anything else), or None (skip the step)
STEP_OUTPUT = Optional[Union[Tensor, Mapping[str, Any]]]
_EVALUATE_OUTPUT = List[Mapping[str, float]]  # trainer.validate/test: one dict of metrics per dataloader
_PREDICT_OUTPUT = Union[List[Any], List[List[Any]]]  # trainer.predict: per batch, or per dataloader then per batch
# *_dataloader hooks return any iterable, or a list/tuple/dict (any nesting) of iterables
TRAIN_DATALOADERS = Any
EVAL_DATALOADERS = Any


# --- LR schedulers ----------------------------------------------------------------------------------------------------
LRSchedulerTypeTuple = (LRScheduler, ReduceLROnPlateau)  # for isinstance checks
LRSchedulerTypeUnion = Union[LRScheduler, ReduceLROnPlateau]
LRSchedulerType = Union[Type[LRScheduler], Type[ReduceLROnPlateau]]
LRSchedulerPLType = Union[LRScheduler, ReduceLROnPlateau]


@dataclass
class LRSchedulerConfig:
    """One LR scheduler and when the loop steps it (the dict form of `configure_optimizers`, normalized)."""

    scheduler: Any
    name: Optional[str] = None  # the LearningRateMonitor key; None: derived from the optimizer's class
    interval: str = "epoch"  # "epoch" or "step"
    frequency: int = 1  # step it every `frequency` intervals
    reduce_on_plateau: bool = False  # ReduceLROnPlateau: stepped with the value of `monitor`
    monitor: Optional[str] = None
    strict: bool = True  # a missing `monitor` value is an error (else a warning)


class LRSchedulerConfigType(TypedDict, total=False):
    """The dict a user writes under "lr_scheduler" in `configure_optimizers`."""

    scheduler: Required[LRSchedulerTypeUnion]
    name: Optional[str]
    interval: str
    frequency: int
    reduce_on_plateau: bool
    monitor: Optional[str]
    strict: bool


class OptimizerConfig(TypedDict):
    optimizer: Optimizer


class OptimizerLRSchedulerConfig(TypedDict):
    optimizer: Optimizer
    lr_scheduler: Union[LRSchedulerTypeUnion, LRSchedulerConfigType]
    monitor: NotRequired[str]


# every form `configure_optimizers` may return
OptimizerLRScheduler = Optional[
    Union[
        Optimizer,
        Sequence[Optimizer],
        Tuple[Sequence[Optimizer], Sequence[Union[LRSchedulerTypeUnion, LRSchedulerConfig]]],
        OptimizerConfig,
        OptimizerLRSchedulerConfig,
        Sequence[OptimizerConfig],
        Sequence[OptimizerLRSchedulerConfig],
    ]
]


# --- structural types -----------------------------------------------------------------------------------------------
@runtime_checkable
class DistributedDataParallel(Protocol):
    """What the loop needs of a DDP-wrapped module (torch's DistributedDataParallel satisfies it)."""

    module: torch.nn.Module

    @contextmanager
    def no_sync(self) -> Generator: ...


class _SizedIterable(Protocol):
    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator: ...


__all__ = [
    "EVAL_DATALOADERS",
    "LRSchedulerConfig",
    "LRSchedulerConfigType",
    "LRSchedulerPLType",
    "LRSchedulerType",
    "LRSchedulerTypeTuple",
    "LRSchedulerTypeUnion",
    "OptimizerConfig",
    "OptimizerLRScheduler",
    "OptimizerLRSchedulerConfig",
    "STEP_OUTPUT",
    "TRAIN_DATALOADERS",
]
