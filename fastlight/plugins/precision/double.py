"""`lightning.pytorch.plugins.precision.double`."""
from fastlight.plugins.precision import DoublePrecision

__all__ = ["DoublePrecision"]
