"""`lightning.pytorch.plugins.precision.precision`."""
from fastlight.plugins.precision import Precision

__all__ = ["Precision"]
