"""Rank-zero helpers: run or print only on the global rank 0 process (`lightning.pytorch.utilities.rank_zero`).

The rank is read from the environment the launchers set at import (RANK, then LOCAL_RANK, SLURM_PROCID,
JSM_NAMESPACE_RANK, as Lightning reads them); the DDP strategy sets it to the process's global rank with
`_set_rank` once the ranks are known. `_set_rank` also sets `lightning_utilities`' `rank_zero_only.rank` when that
package is installed (the global Lightning's own `rank_zero_only` is, and that projects' loggers call), so
code written against Lightning's rank-zero helpers sees the same rank as fastlight's.
"""
import functools
import importlib.util
import logging
import os
from typing import Any, Callable, Optional, TypeVar

from .. import _warn

# Console messages go to the loggers Lightning's do, so the configuration Lightning documents keeps working
# (`logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)`, a handler on `lightning.pytorch.core`): a message
# of fastlight.X is logged on `lightning.pytorch.X`, the rank-zero helpers' on `lightning.pytorch.utilities.rank_zero`.
LIGHTNING_LOGGER = "lightning.pytorch"


def module_logger(module_name: str) -> logging.Logger:
    """The logger for messages of fastlight module `module_name` (its `__name__`): Lightning's name for it."""
    suffix = module_name[len("fastlight"):] if module_name.split(".")[0] == "fastlight" else "." + module_name
    return logging.getLogger(LIGHTNING_LOGGER + suffix)


log = module_logger(__name__)
T = TypeVar("T")


class LightningDeprecationWarning(DeprecationWarning):
    """Deprecation warnings raised by fastlight for Lightning APIs (Lightning's category)."""


def _rank_from_env() -> Optional[int]:
    for key in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK"):
        v = os.environ.get(key)
        if v is not None:
            try:
                return int(v)
            except ValueError:
                pass
    return None


def rank_zero_only(fn: Callable[..., T], default: Optional[T] = None) -> Callable[..., Optional[T]]:
    """Decorator: call `fn` only on global rank 0; other ranks get `default`."""

    @functools.wraps(fn)
    def wrapped(*args: Any, **kwargs: Any) -> Optional[T]:
        if rank_zero_only.rank == 0:
            return fn(*args, **kwargs)
        return default

    return wrapped


def _lightning_utilities_rank_zero_only() -> Optional[Callable]:
    """lightning_utilities' rank_zero_only function object when that package is installed, else None."""
    try:
        if importlib.util.find_spec("lightning_utilities") is None:
            return None
        from lightning_utilities.core import rank_zero as lu_rank_zero
    except Exception:  # a broken install must not break `import fastlight`
        return None
    return lu_rank_zero.rank_zero_only


def _set_rank(rank: int) -> None:
    """The one place the process's global rank is set for every rank-zero helper (fastlight's, and Lightning's
    through lightning_utilities when installed)."""
    rank_zero_only.rank = rank  # type: ignore[attr-defined]
    lu = _lightning_utilities_rank_zero_only()
    if lu is not None:
        lu.rank = rank  # type: ignore[attr-defined]


rank_zero_only.rank = _rank_from_env() or 0  # type: ignore[attr-defined]
_lu = _lightning_utilities_rank_zero_only()
if _lu is not None and getattr(_lu, "rank", None) is None:  # as lightning_fabric does: keep a rank already set
    _lu.rank = rank_zero_only.rank  # type: ignore[attr-defined]
del _lu


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
    kwargs.setdefault("category", LightningDeprecationWarning)
    rank_zero_warn(message, **kwargs)


def rank_prefixed_message(message: str, rank: Optional[int]) -> str:
    """'[rank: 1] message' (the message alone when the rank is None)."""
    return message if rank is None else f"[rank: {rank}] {message}"


class WarningCache(set):
    """Emit each distinct message once (on rank 0): `cache.warn(msg)`, `cache.deprecation(msg)`, `cache.info(msg)`."""

    def warn(self, message: str, stacklevel: int = 5, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_warn(message, stacklevel=stacklevel, **kwargs)

    def deprecation(self, message: str, stacklevel: int = 6, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_deprecation(message, stacklevel=stacklevel, **kwargs)

    def info(self, message: str, stacklevel: int = 5, **kwargs: Any) -> None:
        if message not in self:
            self.add(message)
            rank_zero_info(message, stacklevel=stacklevel, **kwargs)


__all__ = [
    "LightningDeprecationWarning",
    "WarningCache",
    "rank_prefixed_message",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
]
