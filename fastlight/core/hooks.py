"""DataHooks: the data hooks LightningModule and LightningDataModule share, with Lightning's defaults.

One set of default bodies serves both classes, so "does this owner override the hook?" compares against
the same function objects whichever class the owner is.
"""
from typing import Any

import torch

from fastlight.utilities.apply_func import move_data_to_device


class DataHooks:
    def prepare_data(self) -> None:
        pass

    def setup(self, stage: str) -> None:
        pass

    def teardown(self, stage: str) -> None:
        pass

    def train_dataloader(self) -> Any:
        raise NotImplementedError("`train_dataloader` must be implemented to be used with the Lightning Trainer")

    def val_dataloader(self) -> Any:
        raise NotImplementedError("`val_dataloader` must be implemented to be used with the Lightning Trainer")

    def test_dataloader(self) -> Any:
        raise NotImplementedError("`test_dataloader` must be implemented to be used with the Lightning Trainer")

    def predict_dataloader(self) -> Any:
        raise NotImplementedError("`predict_dataloader` must be implemented to be used with the Lightning Trainer")

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return move_data_to_device(batch, device)

    def on_before_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        return batch
