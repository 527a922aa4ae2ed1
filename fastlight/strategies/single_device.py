"""`lightning.pytorch.strategies.single_device`."""
from .strategy import SingleDeviceStrategy

__all__ = ["SingleDeviceStrategy"]
