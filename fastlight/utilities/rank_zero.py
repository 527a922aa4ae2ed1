"""Rank-zero helpers: run or print only on the global rank 0 process.

The rank is read from the environment the launchers set (RANK, then SLURM_PROCID, LOCAL_RANK,
JSM_NAMESPACE_RANK); the strategy updates `rank_zero_only.rank` once the process group exists.
"""
import functools
import logging
import os
from typing import Any, Callable, Optional, TypeVar

from .. import _warn

log = logging.getLogger("fastlight")
T = TypeVar("T")


def _rank_from_env() -> int:
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "JSM_NAMESPACE_RANK"):
        v = os.environ.get(key)
        if v is not None:
            try:
                return int(v)
            except ValueError:
                pass
    return 0


def rank_zero_only(fn: Callable[..., T], default: Optional[T] = None) -> Callable[..., Optional[T]]:
    """Decorator: call `fn` only on global rank 0; other ranks get `default`."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Optional[T]:
        if rank_zero_only.rank == 0:
            return fn(*args, **kwargs)
        return default

    return wrapped


rank_zero_only.rank = _rank_from_env()  # type: ignore[attr-defined]


@rank_zero_only
def rank_zero_info(*args: Any, stacklevel: int = 2, **kwargs: Any) -> None:
    log.info(*args, stacklevel=stacklevel + 1, **kwargs)


@rank_zero_only
def rank_zero_debug(*args: Any, stacklevel: int = 2, **kwargs: Any) -> None:
    log.debug(*args, stacklevel=stacklevel + 1, **kwargs)


@rank_zero_only
def rank_zero_warn(message: Any, category: type = UserWarning, stacklevel: Optional[int] = None, **kwargs: Any) -> None:
    """warnings.warn on rank 0, located at the user's line: the first frame outside fastlight (fastlight._warn).

    `stacklevel` is accepted for Lightning's signature; it is not needed, the user's frame is found by walking
    out of the fastlight package."""
    _warn.warn(message, category)


def rank_zero_deprecation(message: Any, stacklevel: Optional[int] = None, **kwargs: Any) -> None:
    rank_zero_warn(message, DeprecationWarning)
