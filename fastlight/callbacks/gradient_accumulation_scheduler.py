"""GradientAccumulationScheduler: change accumulate_grad_batches by epoch, e.g. {0: 8, 4: 4, 8: 1}."""
from typing import Any, Dict

from fastlight.utilities.rank_zero import rank_zero_warn

from .callback import Callback


def _overrides(module: Any, name: str) -> bool:
    """True when the user's class replaces the library's `name` hook (the library class: first base from fastlight or
    Lightning that defines it)."""
    impl = getattr(type(module), name, None)
    for base in type(module).__mro__:
        if base.__module__.startswith(("fastlight.", "pytorch_lightning.", "lightning.")) and name in vars(base):
            return impl is not vars(base)[name]
    return impl is not None


class GradientAccumulationScheduler(Callback):
    """Args:
        scheduling: {epoch: accumulate_grad_batches}; epochs before the first key accumulate 1 batch.

    At each training epoch start it sets `trainer.accumulate_grad_batches`, which the loop reads for that epoch.
    """

    def __init__(self, scheduling: Dict[int, int]) -> None:
        if not scheduling:
            raise TypeError("Empty dict cannot be interpreted correct")
        if any(not isinstance(k, int) or k < 0 for k in scheduling):
            raise ValueError(f"Epoch should be an int greater than or equal to 0. Got {list(scheduling.keys())}.")
        if any(not isinstance(v, int) or v < 1 for v in scheduling.values()):
            raise ValueError(f"Accumulation factor should be an int greater than 0. Got {list(scheduling.values())}.")
        scheduling = dict(scheduling)
        if min(scheduling) != 0:
            scheduling[0] = 1
        self.scheduling = scheduling
        self.epochs = sorted(scheduling)

    def going_to_accumulate_grad_batches(self) -> bool:
        return any(v > 1 for v in self.scheduling.values())

    def get_accumulate_grad_batches(self, epoch: int) -> int:
        for start in reversed(self.epochs):
            if epoch >= start:
                return self.scheduling[start]
        return 1

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        if not getattr(pl_module, "automatic_optimization", True):
            raise RuntimeError(
                "Automatic gradient accumulation and the `GradientAccumulationScheduler` is not supported for"
                " manual optimization. Please remove the callback or switch to automatic optimization."
            )
        overridden = _overrides(pl_module, "optimizer_step") or _overrides(pl_module, "optimizer_zero_grad")
        if overridden and self.going_to_accumulate_grad_batches():
            rank_zero_warn(
                "When using `Trainer(accumulate_grad_batches != 1)` and overriding"
                " `LightningModule.optimizer_{step,zero_grad}`, the hooks will not be called on every batch"
                " (rather, they are called on every optimization step)."
            )
        if getattr(trainer, "accumulate_grad_batches", 1) != 1:
            raise ValueError(
                "You have set `accumulate_grad_batches` and are using the `GradientAccumulationScheduler`"
                " callback. Either remove `accumulate_grad_batches` from the Trainer or remove the callback."
            )

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        trainer.accumulate_grad_batches = self.get_accumulate_grad_batches(trainer.current_epoch)
