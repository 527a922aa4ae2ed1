"""fastlight.core: the user-facing LightningModule and LightningDataModule (no kernels here)."""
from .datamodule import LightningDataModule
from .module import LightningModule
from .optimizer import LightningOptimizer

__all__ = ["LightningDataModule", "LightningModule", "LightningOptimizer"]
