"""`lightning.pytorch.core.mixins.hparams_mixin`: save_hyperparameters / hparams for any class."""
from fastlight.core.hparams import HyperparametersMixin

__all__ = ["HyperparametersMixin"]
