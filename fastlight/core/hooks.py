"""DataHooks: the data hooks LightningModule and LightningDataModule share, with Lightning's defaults.

One set of default bodies serves both classes, so "does this owner override the hook?" compares against
the same function objects whichever class the owner is.
"""
from typing import Any

import torch

from fastlight.utilities.apply_func import move_data_to_device
from fastlight.utilities.exceptions import MisconfigurationException


class DataloaderHookMissing(MisconfigurationException, NotImplementedError):
    """A `*_dataloader` hook called without an implementation (Lightning raises MisconfigurationException; a
    NotImplementedError too, as a hook without a body is one)."""


class DataHooks:
    def prepare_data(self) -> None:
        pass

    def setup(self, stage: str) -> None:
        pass

    def teardown(self, stage: str) -> None:
        pass

    def train_dataloader(self) -> Any:
        raise DataloaderHookMissing("`train_dataloader` must be implemented to be used with the Lightning Trainer")

    def val_dataloader(self) -> Any:
        raise DataloaderHookMissing("`val_dataloader` must be implemented to be used with the Lightning Trainer")

    def test_dataloader(self) -> Any:
        raise DataloaderHookMissing("`test_dataloader` must be implemented to be used with the Lightning Trainer")

    def predict_dataloader(self) -> Any:
        raise DataloaderHookMissing("`predict_dataloader` must be implemented to be used with the Lightning Trainer")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return move_data_to_device(batch, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch
