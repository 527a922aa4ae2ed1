"""The batched input path: a DataLoader over in-memory tensors fetched with one indexing op per tensor.

A plain `DataLoader(TensorDataset(x, y), batch_size=32)` fetches a batch with 32 `dataset[i]` calls and a
`default_collate` that stacks 32 sample tuples: about 150 us per batch on one CPU thread, a third of a tiny model's
step. The same batch is `[x.index_select(0, idx), y.index_select(0, idx)]` (about 5 us): `default_collate` of a
TensorDataset's samples is a list with one stacked tensor per dataset tensor, and `torch.stack` of rows equals
`index_select` of those rows, bit for bit (same dtype, shape, values, a fresh contiguous tensor).

How it plugs in: `iterate(loader)` calls `iter(loader)` as the plain loop does (so the sampler, its RNG, the base
seed draw, `_num_yielded`, `len()` and the fit loop's mid-epoch fast-forward are untouched), then swaps the
iterator's dataset fetcher for `_BatchedFetcher`. The sampler still hands over each batch's index list; only the
`__getitem__` + collate step is replaced. Anything not known to be equivalent keeps the plain iteration, silently:

    - the iterator is torch's single-process map-style iterator (num_workers=0), with automatic batching
      (batch_size set) and `default_collate`;
    - `loader.batch_sampler` is exactly `torch.utils.data.BatchSampler` (any sampler inside it: each batch's indices
      are checked to be Python ints, else that batch takes the plain fetch);
    - the dataset is exactly a `TensorDataset` (or a `Subset` of one) of plain, strided tensors that do not require
      grad and are contiguous (so the result's strides equal `torch.stack`'s too);
    - an index that `index_select` refuses (negative, out of range) makes that batch take the plain fetch, which
      then behaves (wraps around or raises) exactly as the DataLoader does.

On CUDA (`DevicePrefetcher`, used by the fit loop when the batch goes to a CUDA device and no transfer hook is
overridden): each batch is gathered into reused pinned staging buffers (a ring of two), copied to the device
with `non_blocking=True` on a side stream one batch ahead of the step that consumes it; the consuming stream waits
on the side stream and the device tensors are `record_stream`-ed on it, so the caching allocator never hands their
memory out while the step still reads them. Sampling one batch ahead is done only for samplers whose iteration has
no side effect beyond their own state (Sequential, Random, SubsetRandom, Distributed) and never past the number of
batches the loop takes this epoch.

Opt out: `Trainer(batched_input=False)` or the environment variable FASTLIGHT_BATCHED_INPUT=0.
"""
import os
from array import array
from typing import Any, List, Optional, Sequence

import torch
from torch import Tensor

ENV_FLAG = "FASTLIGHT_BATCHED_INPUT"


def enabled_by_env() -> bool:
    return os.environ.get(ENV_FLAG, "1").strip().lower() not in ("0", "false", "no", "off")


def _plain_tensor(t: Any) -> bool:
    return (type(t) is Tensor and t.layout == torch.strided and not t.requires_grad and t.is_contiguous()
            and t.dim() >= 1)


def _dataset_tensors(dataset: Any) -> Optional[tuple]:
    """(tensors, subset indices or None) when `dataset[i]` is known to be `tuple(t[j] for t in tensors)`."""
    from torch.utils.data import Subset, TensorDataset

    indices = None
    if type(dataset) is Subset:
        inner = dataset.dataset
        try:
            indices = torch.as_tensor(dataset.indices, dtype=torch.long)
        except (TypeError, ValueError, RuntimeError):
            return None
        if indices.dim() != 1 or (indices.numel() and int(indices.min()) < 0):
            return None  # negative subset indices wrap around: left to the plain path
        dataset = inner
    if type(dataset) is not TensorDataset:
        return None
    tensors = dataset.tensors
    if not tensors or not all(_plain_tensor(t) for t in tensors):
        return None
    device = tensors[0].device
    if any(t.device != device for t in tensors):
        return None
    if indices is not None:
        if indices.numel() and int(indices.max()) >= len(tensors[0]):
            return None
        indices = indices.to(device)
    return tensors, indices


class _BatchedFetcher:
    """Stands in for torch's `_MapDatasetFetcher`: `fetch(index_list)` gathers the batch with one `index_select`
    per tensor; a batch it cannot gather that way goes to the original fetcher."""

    __slots__ = ("tensors", "subset", "device", "plain", "staging", "ints")

    def __init__(self, tensors: Sequence[Tensor], subset: Optional[Tensor], plain: Any, ints: bool) -> None:
        self.tensors = tuple(tensors)
        self.subset = subset
        self.device = self.tensors[0].device
        self.plain = plain
        self.ints = ints  # the sampler is known to yield Python ints: no per-index type check
        self.staging: Optional["_PinnedRing"] = None  # set by DevicePrefetcher: gather into pinned buffers

    def indices(self, index: Any) -> Optional[Tensor]:
        if type(index) is not list or not index:
            return None
        if not self.ints:
            for i in index:
                if type(i) is not int:  # numpy ints, bools, tensors: the plain fetch decides what they mean
                    return None
        try:  # about 4x faster than torch.tensor(list); the tensor keeps the array alive
            idx = torch.frombuffer(array("q", index), dtype=torch.long)
        except OverflowError:
            return None
        if self.device.type != "cpu":
            idx = idx.to(self.device)
        if self.subset is not None:
            try:
                idx = self.subset.index_select(0, idx)
            except (IndexError, RuntimeError):
                return None
        return idx

    def fetch(self, index: Any) -> Any:
        idx = self.indices(index)
        if idx is None:
            return self.plain.fetch(index)
        try:
            if self.staging is not None:
                return self.staging.gather(self.tensors, idx)
            return [t.index_select(0, idx) for t in self.tensors]
        except (IndexError, RuntimeError):  # negative or out-of-range index: the plain fetch decides
            return self.plain.fetch(index)


def _batched_fetcher_for(it: Any) -> Optional[_BatchedFetcher]:
    from torch.utils.data import BatchSampler
    from torch.utils.data._utils.collate import default_collate
    from torch.utils.data._utils.fetch import _MapDatasetFetcher
    from torch.utils.data.dataloader import _DatasetKind, _SingleProcessDataLoaderIter

    if type(it) is not _SingleProcessDataLoaderIter or it._dataset_kind != _DatasetKind.Map:
        return None
    if not it._auto_collation or it._collate_fn is not default_collate:
        return None
    if type(it._index_sampler) is not BatchSampler or type(it._dataset_fetcher) is not _MapDatasetFetcher:
        return None
    found = _dataset_tensors(it._dataset)
    if found is None:
        return None
    tensors, subset = found
    if it._pin_memory and tensors[0].device.type != "cpu":
        return None  # the plain loader's pin_memory rejects device tensors: keep its behaviour
    ints = type(it._index_sampler.sampler) in _int_samplers()
    return _BatchedFetcher(tensors, subset, it._dataset_fetcher, ints)


def _int_samplers() -> tuple:
    """Samplers whose indices are always Python ints (SubsetRandomSampler yields the user's own index objects)."""
    from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler

    return (SequentialSampler, RandomSampler, DistributedSampler)


def iterate(loader: Any, enabled: bool = True) -> Any:
    """`iter(loader)`, with the batched fetch installed when the loader qualifies (see the module docstring)."""
    it = iter(loader)
    if enabled and enabled_by_env():
        fetcher = _batched_fetcher_for(it)
        if fetcher is not None:
            it._dataset_fetcher = fetcher
    return it


def is_batched(it: Any) -> bool:
    return isinstance(getattr(it, "_dataset_fetcher", None), _BatchedFetcher)


# ----------------------------------------------------------------------------------------------- CUDA prefetch
class _PinnedRing:
    """Two sets of pinned host buffers, one per dataset tensor, each sized for a full batch. A slot is rewritten
    only after the copy that read it last has finished (its event)."""

    def __init__(self, slots: int = 2) -> None:
        self.buffers: List[Optional[List[Tensor]]] = [None] * slots
        self.events: List[Any] = [None] * slots
        self.slot = 0

    def gather(self, tensors: Sequence[Tensor], idx: Tensor) -> List[Tensor]:
        slot = self.slot
        self.slot = (slot + 1) % len(self.buffers)
        event = self.events[slot]
        if event is not None:
            event.synchronize()  # host waits for the H2D copy that last read this slot (normally long done)
        n = idx.numel()
        bufs = self.buffers[slot]
        if bufs is None or any(b.shape[0] < n or b.shape[1:] != t.shape[1:] or b.dtype != t.dtype
                               for b, t in zip(bufs, tensors)):
            bufs = self.buffers[slot] = [torch.empty((n,) + tuple(t.shape[1:]), dtype=t.dtype, pin_memory=True)
                                         for t in tensors]
        return [torch.index_select(t, 0, idx, out=b[:n]) for t, b in zip(tensors, bufs)]

    def mark_read(self, event: Any) -> None:
        """The copies from the slot gathered last were enqueued; `event` completes when they are done."""
        self.events[(self.slot - 1) % len(self.buffers)] = event


def _sampler_is_side_effect_free(loader: Any) -> bool:
    from torch.utils.data import DistributedSampler, RandomSampler, SequentialSampler, SubsetRandomSampler

    sampler = getattr(getattr(loader, "batch_sampler", None), "sampler", None)
    return type(sampler) in (SequentialSampler, RandomSampler, SubsetRandomSampler, DistributedSampler)


class DevicePrefetcher:
    """Iterates a batched DataLoader iterator whose batches go to a CUDA device: host gather into pinned buffers,
    H2D copy on a side stream, issued one batch ahead (see the module docstring). Yields lists of device tensors,
    as `transfer_batch_to_device` of the plain batch would."""

    def __init__(self, it: Any, device: torch.device, max_batches: float, look_ahead: bool) -> None:
        self._device = device
        self._left = max_batches  # batches the loop may still take this epoch: never sample past them
        self._look_ahead = look_ahead
        self._stream = torch.cuda.Stream(device=device)
        self._ring = _PinnedRing()
        fetcher = it._dataset_fetcher
        fetcher.staging = self._ring
        it._pin_memory = False  # the staging buffers are pinned already
        self._it = _BatchedIterator(it)
        self._next: Any = None
        self._exhausted = False
        if look_ahead:
            self._prefetch()

    def __iter__(self) -> "DevicePrefetcher":
        return self

    def _copy(self, batch: Any) -> Any:
        """Enqueue the H2D copy of one batch (a list of tensors) on the side stream."""
        staged = all(t.is_pinned() for t in batch)  # False: a batch of the plain fetch (unusual indices)
        with torch.cuda.stream(self._stream):
            out = [t.to(self._device, non_blocking=True) for t in batch]
            if staged:
                event = torch.cuda.Event()
                event.record(self._stream)
        if staged:
            self._ring.mark_read(event)
        return out

    def _prefetch(self) -> None:
        if self._left <= 0:
            self._exhausted = True
            return
        try:
            batch = next(self._it)
        except StopIteration:
            self._exhausted = True
            return
        self._left -= 1
        self._next = self._copy(batch)

    def __next__(self) -> Any:
        if not self._look_ahead:
            if self._left <= 0:
                raise StopIteration
            self._prefetch()
        if self._exhausted and self._next is None:
            raise StopIteration
        batch, self._next = self._next, None
        if batch is None:
            raise StopIteration
        current = torch.cuda.current_stream(self._device)
        current.wait_stream(self._stream)  # the step's kernels run after the copy
        for t in batch:
            if isinstance(t, Tensor) and t.device.type == "cuda":
                t.record_stream(current)  # allocated on the side stream, read on this one
        if self._look_ahead:
            self._prefetch()  # the next batch's copy overlaps this step's kernels
        return batch


class _BatchedIterator:
    """next() of a batched DataLoader iterator: what torch's `__next__` does for a single-process map-style
    iterator (next index list, fetch, pin when asked, count it as yielded) without its `record_function` range,
    which costs more than the batched fetch itself; with a profiler recording, torch's own `__next__`."""

    __slots__ = ("_it",)

    def __init__(self, it: Any) -> None:
        self._it = it

    def __iter__(self) -> "_BatchedIterator":
        return self

    def __len__(self) -> int:
        return len(self._it)

    def __next__(self) -> Any:
        it = self._it
        if it._sampler_iter is None or torch._C._autograd._profiler_enabled():
            return next(it)
        data = it._next_data()
        it._num_yielded += 1
        return data


def epoch_iterator(it: Any, loader: Any, device: torch.device, max_batches: float, prefetch: bool) -> Any:
    """The fit loop's per-epoch iterator over `it` (made by `iterate`): `it` itself when not batched; a
    DevicePrefetcher when `prefetch` and the batches of a CPU dataset go to a CUDA device; else _BatchedIterator."""
    if not is_batched(it):
        return it
    if prefetch and device.type == "cuda" and torch.cuda.is_available() \
            and it._dataset_fetcher.device.type == "cpu":  # (a GPU-resident dataset is gathered on the device)
        look_ahead = _sampler_is_side_effect_free(loader) and max_batches != float("inf")
        return DevicePrefetcher(it, device, max_batches, look_ahead)
    return _BatchedIterator(it)
