"""Paths that may be URLs ("s3://bucket/run", "memory://x"): which are local, and one small file-system interface
for both kinds, so that the loggers write to either.

Local paths go through `os` directly; a URL needs fsspec (an optional dependency), imported only then.
"""
import os
import posixpath
import re
from typing import IO, Any, List, Union

_PATH = Union[str, os.PathLike]
_URL = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)(::|://)")


def protocol(path: _PATH) -> str:
    """"file" for a plain path or file:// URL, else the URL's scheme ("s3", "memory" ...)."""
    match = _URL.match(str(path))
    if match is None:
        return "file"
    return "file" if match.group(1) in ("file", "local") else match.group(1)


def is_local_path(path: _PATH) -> bool:
    return protocol(path) == "file"


class LocalFS:
    """The local file system through `os`."""

    isdir = staticmethod(os.path.isdir)
    isfile = staticmethod(os.path.isfile)
    exists = staticmethod(os.path.exists)
    listdir = staticmethod(os.listdir)
    rm = staticmethod(os.remove)

    @staticmethod
    def makedirs(path: _PATH, exist_ok: bool = True) -> None:
        os.makedirs(path, exist_ok=exist_ok)

    @staticmethod
    def open(path: _PATH, mode: str = "r", **kwargs: Any) -> IO:
        return open(path, mode, **kwargs)


class RemoteFS:
    """An fsspec file system behind the same methods as LocalFS."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def isdir(self, path: _PATH) -> bool:
        return self.fs.isdir(str(path))

    def isfile(self, path: _PATH) -> bool:
        return self.fs.isfile(str(path))

    def exists(self, path: _PATH) -> bool:
        return self.fs.exists(str(path))

    def listdir(self, path: _PATH) -> List[str]:
        """The entries' names, as os.listdir gives them (fsspec lists full paths)."""
        return [posixpath.basename(p.rstrip("/")) for p in self.fs.ls(str(path), detail=False)]

    def rm(self, path: _PATH) -> None:
        self.fs.rm(str(path))

    def makedirs(self, path: _PATH, exist_ok: bool = True) -> None:
        self.fs.makedirs(str(path), exist_ok=exist_ok)

    def open(self, path: _PATH, mode: str = "r", **kwargs: Any) -> IO:
        return self.fs.open(str(path), mode, **kwargs)


def filesystem(path: _PATH) -> Union[LocalFS, RemoteFS]:
    """LocalFS for a plain path, else fsspec's file system for the URL (a clear error without fsspec). A file://
    URL is local but goes through fsspec: `os` does not take URLs."""
    return LocalFS() if _URL.match(str(path)) is None else RemoteFS(remote_filesystem(path))


def remote_filesystem(path: _PATH) -> Any:
    """fsspec's file system for a URL path (a clear error without fsspec)."""
    try:
        import fsspec
    except ImportError as err:
        raise ModuleNotFoundError(
            f"The path {str(path)!r} is a URL: using it needs fsspec (pip install fsspec)"
        ) from err
    fs, _ = fsspec.core.url_to_fs(str(path))
    return fs
