"""Distributed helpers with Lightning's names (`lightning.pytorch.utilities.is_shared_filesystem`)."""
import os
import time
import uuid
from pathlib import Path
from typing import Any, Optional, Union


def is_shared_filesystem(strategy: Any, path: Optional[Union[str, "os.PathLike[str]"]] = None,
                         timeout: int = 3) -> bool:
    """Whether `path` (default: the working directory) is on a filesystem all processes of `strategy` share: rank 0
    writes a marker file there and every rank looks for it for up to `timeout` seconds. A collective: call it on all
    ranks. A path with a remote protocol ("s3://...") counts as shared; one process is trivially shared."""
    if path is not None and "://" in os.fspath(path) and not os.fspath(path).startswith("file://"):
        return True
    if getattr(strategy, "world_size", 1) == 1:
        return True
    here = Path(os.fspath(path) if path is not None else os.getcwd()).resolve()
    if not strategy.reduce_boolean_decision(strategy.broadcast(here) == here, all=True):
        return False  # not even the same path on every rank
    if not strategy.reduce_boolean_decision(here.exists(), all=True):
        raise FileNotFoundError(f"is_shared_filesystem: the path does not exist on every rank: {here}")
    folder = here.parent if here.is_file() else here
    marker = folder / f".fastlight_shared_fs_check_{strategy.broadcast(uuid.uuid4().hex)}"
    strategy.barrier()
    if strategy.is_global_zero:
        marker.touch()
        found = True
    else:
        deadline = time.monotonic() + timeout
        found = marker.exists()
        while not found and time.monotonic() < deadline:
            time.sleep(0.1)
            found = marker.exists()
    shared = strategy.reduce_boolean_decision(found, all=True)
    strategy.barrier()
    if strategy.is_global_zero:
        marker.unlink(missing_ok=True)
    return shared


__all__ = ["is_shared_filesystem"]
