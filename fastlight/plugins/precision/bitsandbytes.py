"""`lightning.pytorch.plugins.precision.bitsandbytes`."""
from fastlight.plugins.precision import BitsandbytesPrecision

__all__ = ["BitsandbytesPrecision"]
