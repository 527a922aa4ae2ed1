"""fastlight.callbacks: Lightning-compatible callbacks, one class per file."""
from .callback import Callback

__all__ = ["Callback"]
