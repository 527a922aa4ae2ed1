"""CombinedLoader: several iterables (any nesting of list/tuple/dict) iterated together, Lightning 2.6's behaviour.

Modes (what one `next()` returns; `len()` after `iter()`):
- "min_size":       (batches in the original structure, batch_idx, 0); stops with the shortest; len = min
- "max_size_cycle": same; exhausted iterables restart until the longest is done; len = max
- "max_size":       same; exhausted iterables give None until the longest is done; len = max
- "sequential":     (one iterable's batch, batch_idx within it, its index in the flat list), one after another;
                    len = sum
`limits` (one per flat iterable, or a single number) caps each iterable's contribution to `len()`; "sequential" also
stops each iterable at its limit. The structure is flattened with torch's pytree, except that a container holding only
ints/floats/strings counts as one iterable (so `[1, 2, 3]` is a single iterable, not three).
"""
import contextlib
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

from torch.utils._pytree import tree_flatten, tree_unflatten

_Number = Union[int, float]


def _is_leaf(node: Any) -> bool:
    """An iterable of the collection: anything that is not a pytree container, or a container of primitives only."""
    flat, spec = tree_flatten(node, is_leaf=lambda x: x is not node)
    if spec.num_leaves == 1 and flat and flat[0] is node:  # pytree does not open it: not a container
        return True
    return all(isinstance(child, (int, float, str)) for child in flat)


def sized_len(iterable: Any) -> _Number:
    """len(), or inf for an iterable without a length (Lightning's convention for unsized loaders)."""
    try:
        n = len(iterable)
    except (TypeError, NotImplementedError):
        return float("inf")
    return float("inf") if n is None else n


def _capped_lengths(iterables: List[Any], limits: Optional[List[_Number]]) -> List[_Number]:
    lengths = [sized_len(it) for it in iterables]
    if limits is None:
        return lengths
    return [min(n, cap) for n, cap in zip(lengths, limits)]


class _MinSize:
    """Stops as soon as one iterable is exhausted."""

    def __init__(self, iterables: List[Any], limits: Optional[List[_Number]]) -> None:
        self.iterables = iterables
        self.limits = limits
        self.iterators = [iter(it) for it in iterables]
        self.batch_idx = 0

    def __next__(self) -> Tuple[List[Any], int, int]:
        batches = [next(it) for it in self.iterators]
        idx = self.batch_idx
        self.batch_idx += 1
        return batches, idx, 0


class _MaxSizeCycle(_MinSize):
    """An exhausted iterable starts over (a new `iter()`), until every one of them has been exhausted once."""

    def __init__(self, iterables: List[Any], limits: Optional[List[_Number]]) -> None:
        super().__init__(iterables, limits)
        self.exhausted = [False] * len(iterables)

    def __next__(self) -> Tuple[List[Any], int, int]:
        batches = []
        for i, iterator in enumerate(self.iterators):
            try:
                batches.append(next(iterator))
            except StopIteration:
                self.exhausted[i] = True
                if all(self.exhausted):
                    raise
                self.iterators[i] = iter(self.iterables[i])
                batches.append(next(self.iterators[i]))
        idx = self.batch_idx
        self.batch_idx += 1
        return batches, idx, 0


class _MaxSize(_MaxSizeCycle):
    """An exhausted iterable gives None until every one of them is exhausted."""

    def __next__(self) -> Tuple[List[Any], int, int]:
        batches: List[Any] = [None] * len(self.iterators)
        any_left = False
        for i, iterator in enumerate(self.iterators):
            with contextlib.suppress(StopIteration):
                batches[i] = next(iterator)
                any_left = True
        if not any_left:
            raise StopIteration
        idx = self.batch_idx
        self.batch_idx += 1
        return batches, idx, 0


class _Sequential:
    """One iterable after the other, each up to its limit; only the current one holds an iterator (and workers)."""

    def __init__(self, iterables: List[Any], limits: Optional[List[_Number]]) -> None:
        self.iterables = iterables
        self.limits = limits
        self.dataloader_idx = 0
        self.batch_idx = 0
        self.iterators = [iter(iterables[0])] if iterables else []

    def _advance(self) -> None:
        self.dataloader_idx += 1
        self.batch_idx = 0
        self.iterators = [iter(self.iterables[self.dataloader_idx])] if self.dataloader_idx < len(self.iterables) else []

    def __next__(self) -> Tuple[Any, int, int]:
        while self.dataloader_idx < len(self.iterables):
            if self.limits is not None and self.batch_idx >= self.limits[self.dataloader_idx]:
                self._advance()
                continue
            try:
                batch = next(self.iterators[0])
            except StopIteration:
                self._advance()
                continue
            idx = self.batch_idx
            self.batch_idx += 1
            return batch, idx, self.dataloader_idx
        raise StopIteration


_MODES: Dict[str, Tuple[Callable[[List[_Number]], _Number], type]] = {
    "min_size": (min, _MinSize),
    "max_size_cycle": (max, _MaxSizeCycle),
    "max_size": (max, _MaxSize),
    "sequential": (sum, _Sequential),
}


class CombinedLoader(Iterable):
    """Iterate several iterables together; `iterables` is one iterable or any nesting of list/tuple/dict of them.

    Each `next()` gives `(batch, batch_idx, dataloader_idx)`: in "min_size", "max_size_cycle" and "max_size" the
    batch has the structure of `iterables` (`{"a": batch_a, "b": batch_b}`) and dataloader_idx is 0; in "sequential"
    it is one iterable's batch and dataloader_idx is that iterable's position in `flattened`.

    Example::

        loader = CombinedLoader({"a": DataLoader(range(6), batch_size=4), "b": DataLoader(range(15), batch_size=5)},
                                "max_size_cycle")
        for batch, batch_idx, dataloader_idx in loader:   # 3 batches; "a" starts over for the third
            batch["a"], batch["b"]
    """

    def __init__(self, iterables: Any, mode: str = "min_size") -> None:
        if mode not in _MODES:
            raise ValueError(f"Unsupported mode {mode!r}, please select one of: {list(_MODES)}.")
        self._iterables = iterables
        self._flattened, self._spec = tree_flatten(iterables, is_leaf=_is_leaf)
        self._mode = mode
        self._iterator: Any = None
        self._limits: Optional[List[_Number]] = None

    @property
    def iterables(self) -> Any:
        """The iterables in their original structure."""
        return self._iterables

    @property
    def flattened(self) -> List[Any]:
        """The iterables as a flat list (the order of `dataloader_idx` in "sequential")."""
        return self._flattened

    @flattened.setter
    def flattened(self, flattened: List[Any]) -> None:
        if len(flattened) != len(self._flattened):
            raise ValueError(
                f"CombinedLoader.flattened: got {len(flattened)} iterables, the structure holds {len(self._flattened)}"
            )
        self._flattened = list(flattened)
        self._iterables = tree_unflatten(self._flattened, self._spec)

    @property
    def sampler(self) -> Any:
        """Each iterable's `sampler` (None where it has none), in the original structure."""
        return tree_unflatten([getattr(it, "sampler", None) for it in self._flattened], self._spec)

    @property
    def batch_sampler(self) -> Any:
        """Each iterable's `batch_sampler` (None where it has none), in the original structure."""
        return tree_unflatten([getattr(it, "batch_sampler", None) for it in self._flattened], self._spec)

    @property
    def limits(self) -> Optional[List[_Number]]:
        """The most batches each iterable contributes (None: no limit)."""
        return self._limits

    @limits.setter
    def limits(self, limits: Optional[Union[_Number, List[_Number]]]) -> None:
        if isinstance(limits, (int, float)):
            limits = [limits] * len(self._flattened)
        elif isinstance(limits, list) and len(limits) != len(self._flattened):
            raise ValueError(
                f"CombinedLoader.limits: got {len(limits)} limits for {len(self._flattened)} iterables"
            )
        self._limits = limits

    def __iter__(self) -> "CombinedLoader":
        self._iterator = _MODES[self._mode][1](self._flattened, self._limits)
        return self

    def __next__(self) -> Tuple[Any, int, int]:
        if self._iterator is None:
            raise RuntimeError("Call `iter(combined_loader)` before `next(combined_loader)`.")
        out, batch_idx, dataloader_idx = next(self._iterator)
        if self._mode == "sequential":
            return out, batch_idx, dataloader_idx
        return tree_unflatten(out, self._spec), batch_idx, dataloader_idx

    def __len__(self) -> _Number:
        """The number of batches in this mode (infinite if an iterable that decides it has no length)."""
        if self._iterator is None:
            raise RuntimeError("Please call `iter(combined_loader)` first.")
        return self._num_batches()

    def _num_batches(self) -> _Number:
        """`len()` without needing `iter()` first: each iterable's length capped by its limit, combined by the mode."""
        return _MODES[self._mode][0](_capped_lengths(self._flattened, self._limits))

    def reset(self) -> None:
        """Drop the iterator and the inner DataLoaders' cached iterators (shutting their workers down)."""
        self._iterator = None
        for iterable in self._flattened:
            cached = getattr(iterable, "_iterator", None)
            if cached is not None:
                shutdown = getattr(cached, "_shutdown_workers", None)
                if callable(shutdown):
                    shutdown()
                iterable._iterator = None

    def _dataset_length(self) -> _Number:
        """The datasets' lengths combined as the mode combines batch counts."""
        lengths = [sized_len(getattr(it, "dataset", None)) for it in self._flattened]
        lengths = [n for n in lengths if n != float("inf")]
        if not lengths:
            raise NotImplementedError("All datasets are iterable-style datasets.")
        return _MODES[self._mode][0](lengths)


class _CombinedBatches:
    """The batches of a CombinedLoader without (batch_idx, dataloader_idx): what the fit loop iterates."""

    __slots__ = ("combined",)

    def __init__(self, combined: CombinedLoader) -> None:
        self.combined = combined

    def __iter__(self) -> "_BatchIterator":
        return _BatchIterator(iter(self.combined))

    def __len__(self) -> _Number:
        return self.combined._num_batches()


class _BatchIterator:
    """next(): the batch of the combined iterator's next (batch, batch_idx, dataloader_idx). A class, not a generator
    over the CombinedLoader, since iterating a CombinedLoader calls its __iter__ (a restart) again."""

    __slots__ = ("combined",)

    def __init__(self, combined: CombinedLoader) -> None:
        self.combined = combined

    def __iter__(self) -> "_BatchIterator":
        return self

    def __next__(self) -> Any:
        return next(self.combined)[0]


def _map_iterables(fn: Callable[[Any], Any], iterables: Any) -> Any:
    """`fn` applied to each iterable of a list/tuple/dict structure or CombinedLoader (the same object back when `fn`
    changes none of them)."""
    if isinstance(iterables, CombinedLoader):
        iterables.flattened = [fn(it) for it in iterables.flattened]
        return iterables
    flat, spec = tree_flatten(iterables, is_leaf=_is_leaf)
    mapped = [fn(it) for it in flat]
    if all(new is old for new, old in zip(mapped, flat)):
        return iterables
    return tree_unflatten(mapped, spec)
