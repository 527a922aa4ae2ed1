"""`lightning.pytorch.plugins.precision.amp`."""
from fastlight.plugins.precision import MixedPrecision

__all__ = ["MixedPrecision"]
