"""OnExceptionCheckpoint: a checkpoint of the state at the moment a run raised."""
import os
from typing import Any, Union

from . import _trainer_access as access
from .checkpoint import Checkpoint


class OnExceptionCheckpoint(Checkpoint):
    """Save `{dirpath}/{filename}.ckpt` when the run raises (any exception, KeyboardInterrupt included), overwriting
    an earlier one. A run that ends normally removes the file at teardown. `filename` has no extension."""

    FILE_EXTENSION = ".ckpt"

    def __init__(self, dirpath: Union[str, "os.PathLike[str]"], filename: str = "on_exception") -> None:
        super().__init__()
        if not filename:
            raise ValueError("OnExceptionCheckpoint: the filename cannot be empty")
        # required up front: an exception can come before any hook that could choose a directory
        self.dirpath = dirpath
        self.filename = filename

    @property
    def ckpt_path(self) -> str:
        return os.path.join(self.dirpath, self.filename + self.FILE_EXTENSION)

    def on_exception(self, trainer: Any, *_: Any, **__: Any) -> None:
        trainer.save_checkpoint(self.ckpt_path)

    def teardown(self, trainer: Any, *_: Any, **__: Any) -> None:
        access.remove_checkpoint(trainer, self.ckpt_path)
