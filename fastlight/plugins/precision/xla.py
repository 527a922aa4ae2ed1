"""`lightning.pytorch.plugins.precision.xla`."""
from fastlight.plugins.precision import XLAPrecision

__all__ = ["XLAPrecision"]
