"""`lightning.pytorch.plugins.io`: checkpoint file I/O plugins."""
from .async_plugin import AsyncCheckpointIO
from .checkpoint_plugin import CheckpointIO
from .torch_plugin import TorchCheckpointIO

__all__ = ["AsyncCheckpointIO", "CheckpointIO", "TorchCheckpointIO"]
