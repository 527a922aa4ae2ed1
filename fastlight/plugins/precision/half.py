"""`lightning.pytorch.plugins.precision.half`."""
from fastlight.plugins.precision import HalfPrecision

__all__ = ["HalfPrecision"]
