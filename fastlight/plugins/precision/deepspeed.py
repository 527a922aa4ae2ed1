"""`lightning.pytorch.plugins.precision.deepspeed`."""
from fastlight.plugins.precision import DeepSpeedPrecision

__all__ = ["DeepSpeedPrecision"]
