"""Lightning's data fetchers (`lightning.pytorch.loops.fetchers`): next() over a loader's batches that counts them and
knows when the loader is done.

fastlight's default loop path does not go through a fetcher: the fit loop iterates the input path (input_path.py)
and finds the last batch itself (from the length, or one batch ahead for loaders without one). The fetchers are what
the loops use for the `dataloader_iter` step flavour, `training_step(self, dataloader_iter)` (also validation_step,
test_step, predict_step): `_DataLoaderIterDataFetcher` hands the step an iterator (`_DataFetcherWrapper`) whose
next() gives `(batch, batch_idx, dataloader_idx)`; the loop reads the fetcher's `done`, `fetched` and last batch for
the hooks (`trainer.fit_loop._data_fetcher`, `trainer.validate_loop._data_fetcher`, ...).

    fetcher.setup(combined_loader)    what to fetch from (a CombinedLoader: its `len()`, limits applied, is `length`)
    iter(fetcher)                     a new iterator; `fetched` = 0; `done` when the length is 0
    next(fetcher)                     (batch, batch_idx, dataloader_idx); `done` once `fetched` reaches `length`, or,
                                      without a length, when the loader raised StopIteration (or, prefetching, when
                                      no batch is left ahead)
    fetcher.teardown()                drops the iterator (and the loaders' worker processes)
"""
import inspect
from collections.abc import Iterator
from typing import Any, Callable, List, Optional

from fastlight.utilities.combined_loader import CombinedLoader, sized_len
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.rank_zero import rank_zero_warn


def _nothing() -> None:
    pass


def _length(iterable: Any) -> Optional[int]:
    """Lightning's `length` of a fetcher: the number of batches, or None when it cannot be known in advance."""
    n = sized_len(iterable)
    return None if n == float("inf") else int(n)


class _DataFetcher(Iterator):
    """next() over the combined loader's (batch, batch_idx, dataloader_idx), counting the batches fetched."""

    def __init__(self) -> None:
        self._combined_loader: Optional[CombinedLoader] = None
        self.iterator: Optional[Iterator] = None
        self.fetched = 0
        self.done = False
        self.length: Optional[int] = None
        # the loops time each fetch with the profiler through these (Lightning's names)
        self._start_profiler: Callable[[], None] = _nothing
        self._stop_profiler: Callable[[], None] = _nothing

    @property
    def combined_loader(self) -> CombinedLoader:
        if self._combined_loader is None:
            raise MisconfigurationException(
                f"`{type(self).__name__}` has nothing to fetch from: call `setup(combined_loader)` with a"
                " `CombinedLoader` first."
            )
        return self._combined_loader

    def setup(self, combined_loader: CombinedLoader) -> None:
        self._combined_loader = combined_loader

    def __iter__(self) -> "_DataFetcher":
        self.iterator = iter(self.combined_loader)
        self.reset()
        return self

    def _start(self, iterator: Iterator, length: Optional[int], fetched: int = 0) -> None:
        """Fetch from an iterator the loop made itself (fastlight's fit loop: the epoch's iterator of the input path,
        yielding (batch, batch_idx, dataloader_idx)) instead of from `iter(combined_loader)`."""
        self.iterator = iterator
        self.reset()
        self.length = length
        self.fetched = fetched
        self.done = length is not None and fetched >= length

    def _fetch(self) -> Any:
        """The next batch of the iterator, timed; `done` follows."""
        self._start_profiler()
        try:
            batch = next(self.iterator)  # type: ignore[arg-type]
        except StopIteration:
            self.done = True
            raise
        finally:
            self._stop_profiler()
        self.fetched += 1
        if self.length is not None:
            self.done = self.fetched >= self.length
        return batch

    def __next__(self) -> Any:
        if self.iterator is None:
            raise RuntimeError(f"Call `iter()` on the `{type(self).__name__}` before `next()`.")
        return self._fetch()

    def reset(self) -> None:
        self.fetched = 0
        if self._combined_loader is not None:  # a teardown before any setup has nothing to measure
            self.length = _length(self._combined_loader)
            self.done = self.length == 0

    def teardown(self) -> None:
        self.reset()
        if self._combined_loader is not None:
            self._combined_loader.reset()
        self.iterator = None


class _PrefetchDataFetcher(_DataFetcher):
    """Fetches `prefetch_batches` batches ahead when the loader has no length, so that `done` is known with the last
    batch (with a length, nothing is fetched ahead: the count tells)."""

    def __init__(self, prefetch_batches: int = 1) -> None:
        super().__init__()
        if prefetch_batches < 0:
            raise ValueError(f"`prefetch_batches` must be 0 or more, got {prefetch_batches}.")
        self.prefetch_batches = prefetch_batches
        self.batches: List[Any] = []

    def __iter__(self) -> "_PrefetchDataFetcher":
        super().__iter__()
        if self.length is None:
            for _ in range(self.prefetch_batches):
                try:
                    self.batches.append(self._fetch())
                except StopIteration:  # fewer batches than prefetch_batches: `done` is already set
                    break
        return self

    def __next__(self) -> Any:
        if self.batches:  # hand out the oldest batch ahead, fetch one more to replace it
            batch = self.batches.pop(0)
            try:
                self.batches.append(self._fetch())
            except StopIteration:
                self.done = not self.batches
            return batch
        if self.done:
            raise StopIteration
        return super().__next__()

    def reset(self) -> None:
        super().reset()
        self.batches = []


class _DataLoaderIterDataFetcher(_DataFetcher):
    """For the `dataloader_iter` step flavour: next() gives the iterator the step fetches from (the same object until
    the loader is done), the step moves what it fetches to the device itself. `_batch`, `_batch_idx` and
    `_dataloader_idx` are the last fetched, for the batch hooks."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._batch: Any = None
        self._batch_idx = 0
        self._dataloader_idx = 0
        self.iterator_wrapper: Optional[_DataFetcherWrapper] = None

    def __iter__(self) -> "_DataLoaderIterDataFetcher":
        super().__iter__()
        self.iterator_wrapper = _DataFetcherWrapper(self)
        return self

    def _start(self, iterator: Iterator, length: Optional[int], fetched: int = 0) -> None:
        super()._start(iterator, length, fetched)
        self.iterator_wrapper = _DataFetcherWrapper(self)

    def __next__(self) -> "_DataFetcherWrapper":  # type: ignore[override]
        if self.done:
            raise StopIteration
        if self.iterator_wrapper is None:
            raise RuntimeError(f"Call `iter()` on the `{type(self).__name__}` before `next()`.")
        return self.iterator_wrapper

    def reset(self) -> None:
        super().reset()
        self._batch = None
        self._batch_idx = 0
        self._dataloader_idx = 0


class _DataFetcherWrapper(Iterator):
    """The `dataloader_iter` a step receives: next() is (batch, batch_idx, dataloader_idx) from the loader, and
    StopIteration once the fetcher is done (its length reached, or the loader exhausted)."""

    def __init__(self, data_fetcher: _DataLoaderIterDataFetcher) -> None:
        self.data_fetcher = data_fetcher

    @property
    def done(self) -> bool:
        return self.data_fetcher.done

    @property
    def fetched(self) -> int:
        return self.data_fetcher.fetched

    @property
    def length(self) -> Optional[int]:
        return self.data_fetcher.length

    def __next__(self) -> Any:
        fetcher = self.data_fetcher
        if fetcher.done:
            raise StopIteration
        batch, batch_idx, dataloader_idx = fetcher._fetch()
        fetcher._batch, fetcher._batch_idx, fetcher._dataloader_idx = batch, batch_idx, dataloader_idx
        return batch, batch_idx, dataloader_idx


def _takes_dataloader_iter(step: Any) -> bool:
    """The step is written `step(self, dataloader_iter)`: it names the parameter (Lightning's explicit check; `*args`
    does not count)."""
    if step is None:
        return False
    try:
        return "dataloader_iter" in inspect.signature(step).parameters
    except (TypeError, ValueError):
        return False


def _dataloader_iter_fetcher(module: Any, step_name: str) -> Optional[_DataLoaderIterDataFetcher]:
    """The fetcher a loop runs `step_name` with when the step takes `dataloader_iter` (Lightning warns that the
    flavour is experimental each time it picks it), else None: the loop's default path."""
    if not _takes_dataloader_iter(getattr(module, step_name, None)):
        return None
    rank_zero_warn(
        f"`{step_name}` takes `dataloader_iter`: it fetches its own batches (a signature Lightning marks experimental,"
        " whose behaviour may change)."
    )
    return _DataLoaderIterDataFetcher()


__all__: List[str] = []  # Lightning's fetchers are private names
