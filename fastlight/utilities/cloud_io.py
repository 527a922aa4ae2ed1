"""Lightning's `cloud_io` helpers (`lightning.fabric.utilities.cloud_io`): `_load` reads a checkpoint from a local
path, a file object, an http(s) URL (checkpoint_io.load_checkpoint: downloaded once, then a safe load unless
weights_only=False) or another fsspec URL; `get_filesystem` gives a path's fsspec file system."""
import os
from typing import IO, Any, Optional, Union

from fastlight.utilities._fs import is_local_path, remote_filesystem
from fastlight.utilities.checkpoint_io import _PATH, load_checkpoint


def _load(path_or_url: Union[IO[bytes], _PATH], map_location: Any = None, weights_only: Optional[bool] = None) -> Any:
    """The checkpoint at `path_or_url`, as Lightning's `_load` reads it, through fastlight's checkpoint reader."""
    if isinstance(path_or_url, (str, os.PathLike)):
        path = str(path_or_url)
        if not path.startswith(("http://", "https://")) and not is_local_path(path):
            with remote_filesystem(path).open(path, "rb") as fp:
                return load_checkpoint(fp, map_location=map_location, weights_only=weights_only)
    return load_checkpoint(path_or_url, map_location=map_location, weights_only=weights_only)


def get_filesystem(path: _PATH, **kwargs: Any) -> Any:
    """fsspec's file system for `path` (the local one for a plain path); needs fsspec."""
    import fsspec

    fs, _ = fsspec.core.url_to_fs(str(path), **kwargs)
    return fs
