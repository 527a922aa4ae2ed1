"""Data helpers (`lightning.pytorch.utilities.data`): the batch size of a batch, whether a loader has a length,
how many workers suit this machine, the worker seeding `seed_everything(workers=True)` asks for."""
import dataclasses
import os
from functools import partial
from typing import Any, Iterable, Iterator, Mapping, Optional

from torch import Tensor
from torch.utils.data import IterableDataset

from .exceptions import MisconfigurationException
from .rank_zero import WarningCache, rank_zero_warn
from .seed import pl_worker_init_function

_warning_cache = WarningCache()
_NO_BATCH_SIZE = ("We could not infer the batch_size from the batch. Either simplify its structure"
                  " or provide the batch_size as `self.log(..., batch_size=batch_size)`.")


def _batch_sizes(batch: Any) -> Iterator[Optional[int]]:
    """The first dimension of every tensor in the (nested) batch, in order; None for a leaf that is no tensor."""
    if isinstance(batch, Tensor):
        yield batch.size(0) if batch.ndim > 0 else 1
    elif isinstance(batch, (str, bytes)):
        yield None
    elif isinstance(batch, Mapping):
        for v in batch.values():
            yield from _batch_sizes(v)
    elif isinstance(batch, Iterable):
        for v in batch:
            yield from _batch_sizes(v)
    elif dataclasses.is_dataclass(batch) and not isinstance(batch, type):
        for f in dataclasses.fields(batch):
            yield from _batch_sizes(getattr(batch, f.name))
    else:
        yield None


def extract_batch_size(batch: Any) -> int:
    """The batch size of `batch`: the first dimension of its first tensor (1 for a scalar tensor). Warns once when
    the tensors disagree; MisconfigurationException when it holds no tensor."""
    found: Optional[int] = None
    try:
        for size in _batch_sizes(batch):
            if size is None:
                continue
            if found is None:
                found = size
            elif size != found:
                _warning_cache.warn(
                    "Trying to infer the `batch_size` from an ambiguous collection. The batch size we found is"
                    f" {found}. To avoid any miscalculations, use `self.log(..., batch_size=batch_size)`."
                )
                break
    except RecursionError:
        raise RecursionError(_NO_BATCH_SIZE) from None
    if found is None:
        raise MisconfigurationException(_NO_BATCH_SIZE)
    return found


def has_iterable_dataset(dataloader: object) -> bool:
    return isinstance(getattr(dataloader, "dataset", None), IterableDataset)


def sized_len(dataloader: object) -> Optional[int]:
    """len(dataloader), or None when it has no length."""
    try:
        return len(dataloader)  # type: ignore[arg-type]
    except (TypeError, NotImplementedError):
        return None


def has_len(dataloader: object) -> bool:
    """Whether the loader has a length (warns when it is 0, or when an IterableDataset defines one)."""
    length = sized_len(dataloader)
    if length == 0:
        rank_zero_warn(f"`{type(dataloader).__name__}` returned 0 length. Please make sure this was your intention.")
    if length is not None and has_iterable_dataset(dataloader):
        rank_zero_warn(
            "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading (when"
            " num_workers > 1), `__len__` could be inaccurate if each worker is not configured independently to"
            " avoid having duplicate data."
        )
    return length is not None


def warn_if_zero_length(name: str, total: Any) -> None:
    """Lightning's warning for loaders without a batch (`total`: their length, summed over the ranks where known)."""
    if total == 0:
        rank_zero_warn(f"Total length of `{name}` across ranks is zero. Please make sure this was your intention.")


def has_len_all_ranks(dataloader: object, strategy: Any,
                      allow_zero_length_dataloader_with_multiple_devices: bool = False) -> bool:
    """Whether the loader has a length, checking the lengths over all ranks (a collective: call it on every rank):
    warns when the total is zero; a rank with zero batches while others have some is an error unless allowed."""
    import torch

    local = sized_len(dataloader)
    if local is None:
        return False
    total = strategy.reduce(torch.tensor(local, device=strategy.root_device), reduce_op="sum")
    name = type(dataloader).__name__
    warn_if_zero_length(name, total)
    if total > 0 and local == 0:
        if not allow_zero_length_dataloader_with_multiple_devices:
            raise RuntimeError(
                f"`{name}` within local rank has zero length. Please make sure that it returns at least 1 batch."
            )
        rank_zero_warn(f"Total length of `{name}` across ranks is zero, but local rank has zero length. Please be"
                       " cautious of uneven batch length.")
    if has_iterable_dataset(dataloader):
        rank_zero_warn(
            "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading (when"
            " num_workers > 1), `__len__` could be inaccurate if each worker is not configured independently to"
            " avoid having duplicate data."
        )
    return True


def _num_cpus_available() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def suggested_max_num_workers(local_world_size: int) -> int:
    """An upper bound for DataLoader(num_workers=...): this process's share of the CPUs it may use, less one for the
    main process (at least 1)."""
    if local_world_size < 1:
        raise ValueError(f"`local_world_size` should be >= 1, got {local_world_size}.")
    return max(1, _num_cpus_available() // local_world_size - 1)


def _worker_check(dataloader: object, name: str, num_devices: int, reload_dataloaders_every_n_epochs: int) -> None:
    """Lightning's data-loading hints for a DataLoader the Trainer is about to use (`name`: "train_dataloader" ...):
    few workers (a PossibleUserWarning, the category users filter), spawned workers that are not persistent, and
    pinned persistent workers reloaded every n epochs."""
    import multiprocessing

    from torch.utils.data import DataLoader

    from .warnings import PossibleUserWarning

    if not isinstance(dataloader, DataLoader):
        return
    upper_bound = suggested_max_num_workers(max(1, num_devices))
    context = dataloader.multiprocessing_context
    start_method = context.get_start_method() if context is not None else multiprocessing.get_start_method()
    if dataloader.num_workers > 0 and start_method == "spawn" and not dataloader.persistent_workers:
        rank_zero_warn(
            f"Consider setting `persistent_workers=True` in '{name}' to speed up the dataloader worker initialization."
        )
    elif dataloader.num_workers < 2 and upper_bound > 1:
        rank_zero_warn(
            f"The '{name}' does not have many workers which may be a bottleneck. Consider increasing the value of the"
            f" `num_workers` argument` to `num_workers={upper_bound}` in the `DataLoader` to improve performance.",
            category=PossibleUserWarning,
        )
    if dataloader.persistent_workers and dataloader.pin_memory and reload_dataloaders_every_n_epochs > 0:
        rank_zero_warn(
            "The combination of `DataLoader(`pin_memory=True`, `persistent_workers=True`) and `Trainer("
            "reload_dataloaders_every_n_epochs > 0)` can lead to instability due to limitations in PyTorch"
            " (https://github.com/pytorch/pytorch/issues/91252). We recommend setting `pin_memory=False` in this case.",
            category=PossibleUserWarning,
        )


__all__ = ["extract_batch_size", "has_iterable_dataset", "has_len", "has_len_all_ranks", "sized_len", "suggested_max_num_workers"]


def _auto_add_worker_init_fn(dataloader: object, rank: int) -> None:
    """After `seed_everything(..., workers=True)` (PL_SEED_WORKERS=1), give a DataLoader that has no `worker_init_fn`
    `pl_worker_init_function` for this global rank, as Lightning does for every loader a Trainer runs: each worker of
    each rank then seeds torch, random and numpy differently and reproducibly (without it every worker starts from a
    copy of the same numpy state). A user's own `worker_init_fn` is kept."""
    if not hasattr(dataloader, "worker_init_fn"):
        return
    if int(os.environ.get("PL_SEED_WORKERS", 0)) and dataloader.worker_init_fn is None:
        dataloader.worker_init_fn = partial(pl_worker_init_function, rank=rank)

