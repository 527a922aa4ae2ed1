"""`lightning.pytorch.plugins.io.wrapper`: a CheckpointIO that delegates to another one."""
from typing import Any, Dict, Optional

from .checkpoint_plugin import CheckpointIO


class _WrappingCheckpointIO(CheckpointIO):
    """Delegates save/load/remove to `checkpoint_io` (a TorchCheckpointIO when none is given)."""

    def __init__(self, checkpoint_io: Optional[Any] = None) -> None:
        super().__init__()
        if isinstance(checkpoint_io, _WrappingCheckpointIO):
            raise ValueError(f"{type(self).__name__}.checkpoint_io must not be a {type(checkpoint_io).__name__}.")
        self._checkpoint_io = checkpoint_io
        self._base_checkpoint_io_configured = checkpoint_io is not None

    @property
    def checkpoint_io(self) -> Any:
        if self._checkpoint_io is None:
            from fastlight.utilities.checkpoint_io import TorchCheckpointIO

            self._checkpoint_io = TorchCheckpointIO()
        return self._checkpoint_io

    @checkpoint_io.setter
    def checkpoint_io(self, io: Any) -> None:
        if self._base_checkpoint_io_configured:
            return
        self._checkpoint_io = io
        self._base_checkpoint_io_configured = True

    def save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.checkpoint_io.save_checkpoint(*args, **kwargs)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Dict[str, Any]:
        return self.checkpoint_io.load_checkpoint(*args, **kwargs)

    def remove_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self.checkpoint_io.remove_checkpoint(*args, **kwargs)

    def teardown(self) -> None:
        teardown = getattr(self.checkpoint_io, "teardown", None)
        if teardown is not None:
            teardown()
