"""CheckpointIO: the interface the Trainer writes, reads and deletes checkpoint files through
(`lightning.pytorch.plugins.io.CheckpointIO`). Pass an implementation as `Trainer(plugins=[MyCheckpointIO()])`."""
from abc import ABC, abstractmethod
from typing import Any, Dict, Optional

from fastlight.utilities.checkpoint_io import TorchCheckpointIO


class CheckpointIO(ABC):
    """Subclass and implement save/load/remove to store checkpoints elsewhere (object stores, another format).
    fastlight's default, TorchCheckpointIO, counts as one (registered as a virtual subclass)."""

    @abstractmethod
    def save_checkpoint(self, checkpoint: Dict[str, Any], path: Any, storage_options: Optional[Any] = None) -> None:
        """Write `checkpoint` (the dict Lightning's format describes) to `path`."""

    @abstractmethod
    def load_checkpoint(self, path: Any, map_location: Optional[Any] = None,
                        weights_only: Optional[bool] = None) -> Dict[str, Any]:
        """Read the checkpoint dict at `path`."""

    @abstractmethod
    def remove_checkpoint(self, path: Any) -> None:
        """Delete the checkpoint at `path`."""

    def teardown(self) -> None:
        """Called when the run ends."""


CheckpointIO.register(TorchCheckpointIO)

__all__ = ["CheckpointIO"]
