"""Lightning's `cloud_io` helpers (`lightning.fabric.utilities.cloud_io`): read a checkpoint from a local path, an
http(s) URL or an fsspec URL, and the fsspec file system of a path."""
import os
from typing import IO, Any, Dict, Optional, Union

from fastlight.utilities._fs import is_local_path, remote_filesystem
from fastlight.utilities.checkpoint_io import load_checkpoint

_PATH = Union[str, os.PathLike]


def _load(path_or_url: Union[IO[bytes], _PATH], map_location: Any = None,
          weights_only: Optional[bool] = None) -> Dict[str, Any]:
    """A checkpoint through fastlight's loader (safe unless weights_only=False); an http(s) URL through torch.hub
    (which caches the download); another URL through fsspec."""
    if not isinstance(path_or_url, (str, os.PathLike)):
        return load_checkpoint(path_or_url, map_location=map_location, weights_only=weights_only)
    path = str(path_or_url)
    if path.startswith(("http://", "https://")):
        import torch

        return torch.hub.load_state_dict_from_url(path, map_location=map_location,
                                                  weights_only=bool(weights_only))
    if is_local_path(path):
        return load_checkpoint(path_or_url, map_location=map_location, weights_only=weights_only)
    with remote_filesystem(path).open(path, "rb") as fp:
        return load_checkpoint(fp, map_location=map_location, weights_only=weights_only)


def get_filesystem(path: _PATH, **kwargs: Any) -> Any:
    """fsspec's file system for `path` (the local one for a plain path); needs fsspec."""
    import fsspec

    fs, _ = fsspec.core.url_to_fs(str(path), **kwargs)
    return fs
