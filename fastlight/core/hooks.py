"""DataHooks: the data hooks LightningModule and LightningDataModule share, with Lightning's defaults.

One set of default bodies serves both classes, so "does this owner override the hook?" compares against
the same function objects whichever class the owner is.
"""
from typing import Any

import torch

from fastlight.utilities.apply_func import move_data_to_device
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.model_helpers import is_overridden
from fastlight.utilities.rank_zero import rank_zero_warn

TRANSFER_HOOKS = ("on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer")


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


def transfer_hook_owner(module: Any, datamodule: Any, name: str, warn: bool = False) -> Any:
    """Whose batch-transfer hook `name` runs, by Lightning's rule: the datamodule's when it overrides it (even if
    the module does too), else the module's. `warn`: say so when the module's override is passed over or when
    a datamodule is attached but the module's override runs (Lightning's two warnings)."""
    if datamodule is None:
        return module
    module_overrides = module is not None and is_overridden(name, module, parent=DataHooks)
    if is_overridden(name, datamodule, parent=DataHooks):
        if warn and module_overrides:
            rank_zero_warn(f"You have overridden `{name}` in both `LightningModule` and `LightningDataModule`."
                           " It will use the implementation from `LightningDataModule` instance.")
        return datamodule
    if warn and module_overrides:
        rank_zero_warn(f"You have overridden `{name}` in `LightningModule` but have passed in a"
                       " `LightningDataModule`. It will use the implementation from `LightningModule` instance.")
    return module
