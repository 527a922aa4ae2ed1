"""`lightning.pytorch.core.mixins`."""
from fastlight.core.hparams import HyperparametersMixin

__all__ = ["HyperparametersMixin"]
