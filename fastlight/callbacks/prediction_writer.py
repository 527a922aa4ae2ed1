"""BasePredictionWriter: write predictions per batch and/or once per predict epoch; subclasses say how."""
import inspect
from enum import Enum
from typing import Any, Optional, Sequence

from fastlight.utilities.exceptions import _MisconfigurationValueError

from .callback import Callback


class WriteInterval(str, Enum):
    BATCH = "batch"
    EPOCH = "epoch"
    BATCH_AND_EPOCH = "batch_and_epoch"

    @property
    def on_batch(self) -> bool:
        return self in (WriteInterval.BATCH, WriteInterval.BATCH_AND_EPOCH)

    @property
    def on_epoch(self) -> bool:
        return self in (WriteInterval.EPOCH, WriteInterval.BATCH_AND_EPOCH)


class BasePredictionWriter(Callback):
    """Override `write_on_batch_end` (called after each predict batch when `write_interval` is "batch" or
    "batch_and_epoch") and/or `write_on_epoch_end` (called with all predictions of the epoch when it is "epoch" or
    "batch_and_epoch"). `batch_indices` are the dataset indices of the samples of a batch, recorded by the
    prediction loop from a DataLoader's batch sampler (empty when the loader has none)."""

    def __init__(self, write_interval: str = "batch") -> None:
        allowed = [i.value for i in WriteInterval]
        if write_interval not in allowed:
            raise _MisconfigurationValueError(  # Lightning's exception type; a ValueError as before
                f"BasePredictionWriter: `write_interval` should be one of {allowed}, got {write_interval!r}.")
        self.interval = WriteInterval(write_interval)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        try:
            params = inspect.signature(pl_module.predict_step).parameters
        except (TypeError, ValueError):
            return
        if "dataloader_iter" in params:
            raise NotImplementedError("The `PredictionWriterCallback` does not support using `dataloader_iter`.")

    def write_on_batch_end(self, trainer: Any, pl_module: Any, prediction: Any, batch_indices: Optional[Sequence[int]],
                           batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        """Write the prediction of one batch."""
        raise NotImplementedError(f"{type(self).__name__} must override `write_on_batch_end` to write every batch")

    def write_on_epoch_end(self, trainer: Any, pl_module: Any, predictions: Sequence[Any],
                           batch_indices: Sequence[Any]) -> None:
        """Write all predictions of the epoch (per dataloader when there are several; `batch_indices` is always per
        dataloader, then per batch)."""
        raise NotImplementedError(f"{type(self).__name__} must override `write_on_epoch_end` to write every epoch")

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                             dataloader_idx: int = 0) -> None:
        if not self.interval.on_batch:
            return
        batch_indices = trainer.predict_loop.current_batch_indices
        self.write_on_batch_end(trainer, pl_module, outputs, batch_indices, batch, batch_idx, dataloader_idx)

    def on_predict_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.interval.on_epoch:
            return
        loop = trainer.predict_loop
        self.write_on_epoch_end(trainer, pl_module, loop.predictions, loop.epoch_batch_indices)
