"""`lightning.pytorch.plugins.precision.fsdp`."""
from fastlight.plugins.precision import FSDPPrecision

__all__ = ["FSDPPrecision"]
