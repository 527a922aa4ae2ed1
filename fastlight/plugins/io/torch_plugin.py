"""`lightning.pytorch.plugins.io.torch_plugin`: TorchCheckpointIO (torch.save / torch.load, written atomically,
loaded with weights_only=True unless the checkpoint needs more; see fastlight.utilities.checkpoint_io)."""
from fastlight.utilities.checkpoint_io import TorchCheckpointIO

__all__ = ["TorchCheckpointIO"]
