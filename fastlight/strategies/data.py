"""Distributed sampler injection, with Lightning's rules.

- Only a torch DataLoader over a map-style dataset whose sampler is not already a DistributedSampler gets one,
  and only when the run is distributed and use_distributed_sampler is on.
- Training loaders always shuffle (Lightning passes shuffle=True for training, whatever the original sampler;
  overfit_batches turns it off); val/test loaders keep the original's shuffling (RandomSampler: yes).
- seed: PL_GLOBAL_SEED (0 when unset); drop_last of DistributedSampler stays False (ranks get padded with
  repeated samples), the DataLoader's own batch-level drop_last is kept.
- RandomSampler/SequentialSampler are replaced by DistributedSampler(dataset); any other sampler is sharded
  through DistributedSamplerWrapper; predict loaders use UnrepeatedDistributedSamplerWrapper (no padding).
- The DataLoader is re-created from its public attributes (the ones that differ from __init__'s defaults).
"""
import inspect
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Sized, Union

import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, DistributedSampler, IterableDataset, RandomSampler
from torch.utils.data import Sampler, SequentialSampler

_TRAIN_STAGES = ("train", "training", "fit")
_PREDICT_STAGES = ("predict", "predicting")
_EVAL_STAGES = ("val", "validate", "validation", "sanity_check", "test", "testing")


class _SamplerAsDataset(Dataset):
    """Indices produced by a sampler, indexable, re-drawn at every epoch (so DistributedSampler can shard them)."""

    def __init__(self, sampler: Union[Sampler, Any]) -> None:
        if not isinstance(sampler, Sized) or len(sampler) == float("inf"):
            raise TypeError(
                f"the DataLoader's sampler {type(sampler).__name__} has no finite __len__, so it cannot be sharded"
                " across processes: give it a __len__, or pass Trainer(use_distributed_sampler=False) and shard"
                " the data yourself"
            )
        self.sampler = sampler
        self._indices: Optional[List[Any]] = None

    def __getitem__(self, index: int) -> Any:
        if self._indices is None:
            self._indices = list(self.sampler)
        return self._indices[index]

    def __len__(self) -> int:
        return len(self.sampler)

    def reset(self) -> None:
        self._indices = list(self.sampler)


class DistributedSamplerWrapper(DistributedSampler):
    """Shards the output of any sized sampler; the wrapped sampler owns randomness (shuffle/seed unused)."""

    def __init__(self, sampler: Union[Sampler, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(_SamplerAsDataset(sampler), *args, **kwargs)

    def __iter__(self) -> Iterator:
        self.dataset.reset()
        return (self.dataset[i] for i in super().__iter__())

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        inner = getattr(self.dataset.sampler, "set_epoch", None)
        if callable(inner):
            inner(epoch)


class UnrepeatedDistributedSampler(DistributedSampler):
    """Rank r gets indices r, r + world, ...: no padding, so every sample is predicted exactly once."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.total_size = len(self.dataset)
        self.num_samples = len(range(self.rank, self.total_size, self.num_replicas))

    def __iter__(self) -> Iterator:
        if self.shuffle:
            g = torch.Generator()
            g.manual_seed(self.epoch)  # Lightning seeds with the epoch alone here
            indices = torch.randperm(self.total_size, generator=g).tolist()
        else:
            indices = list(range(self.total_size))
        return iter(indices[self.rank : self.total_size : self.num_replicas])


class UnrepeatedDistributedSamplerWrapper(UnrepeatedDistributedSampler):
    def __init__(self, sampler: Union[Sampler, Any], *args: Any, **kwargs: Any) -> None:
        super().__init__(_SamplerAsDataset(sampler), *args, **kwargs)

    def __iter__(self) -> Iterator:
        self.dataset.reset()
        return (self.dataset[i] for i in super().__iter__())


def is_dataloader_shuffled(dataloader: Any) -> bool:
    """Whether the loader draws in random order (only a RandomSampler counts, as in Lightning)."""
    if isinstance(getattr(dataloader, "dataset", None), IterableDataset):
        return False
    if not hasattr(dataloader, "sampler"):
        return False
    batch_sampler = getattr(dataloader, "batch_sampler", None)
    sampler = getattr(batch_sampler, "sampler", batch_sampler) if batch_sampler is not None else dataloader.sampler
    return isinstance(sampler, RandomSampler)


def _normalize_stage(stage: str) -> str:
    if stage in _TRAIN_STAGES:
        return "train"
    if stage in _PREDICT_STAGES:
        return "predict"
    if stage in _EVAL_STAGES:
        return "eval"
    raise ValueError(
        f"process_dataloader: unknown stage {stage!r}; expected one of {_TRAIN_STAGES + _EVAL_STAGES + _PREDICT_STAGES}"
    )


def make_distributed_sampler(
    dataloader: DataLoader, stage: str, num_replicas: int, rank: int, overfit_batches: Union[int, float] = 0
) -> DistributedSampler:
    kind = _normalize_stage(stage)
    shuffle = (True if kind == "train" else is_dataloader_shuffled(dataloader)) and not overfit_batches
    kwargs = dict(num_replicas=num_replicas, rank=rank, shuffle=shuffle, seed=int(os.environ.get("PL_GLOBAL_SEED", 0)))
    if kind == "predict":
        return UnrepeatedDistributedSamplerWrapper(dataloader.sampler, **kwargs)
    if isinstance(dataloader.sampler, (RandomSampler, SequentialSampler)):
        return DistributedSampler(dataloader.dataset, **kwargs)
    return DistributedSamplerWrapper(dataloader.sampler, **kwargs)


class IndexRecordingBatchSampler:
    """A batch sampler that remembers the indices of every batch it produced since its last `iter()` (the
    prediction loop hands them to prediction writers). Other attributes are the wrapped sampler's."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.seen_batch_indices: List[List[int]] = []

    def __iter__(self) -> Iterator[List[int]]:
        self.seen_batch_indices = []
        for batch in self.batch_sampler:
            self.seen_batch_indices.append(batch)
            yield batch

    def __len__(self) -> int:
        return len(self.batch_sampler)

    def __getattr__(self, name: str) -> Any:
        if name == "batch_sampler":  # not set yet (unpickling): no recursion
            raise AttributeError(name)
        return getattr(self.batch_sampler, name)


def record_batch_indices(dataloader: DataLoader) -> DataLoader:
    """A copy of `dataloader` for prediction whose batch sampler is an IndexRecordingBatchSampler (and, as for every
    prediction loader Lightning rebuilds, drop_last=False). Raises TypeError when the loader cannot be re-created."""
    if dataloader.batch_sampler is None or isinstance(dataloader.dataset, IterableDataset):
        raise TypeError(f"{type(dataloader).__name__} has no batch sampler over indices to record")
    if isinstance(dataloader.batch_sampler, IndexRecordingBatchSampler):
        return dataloader
    # the batches' own sampler: a loader rebuilt around a distributed sampler keeps it only in its batch sampler
    sampler = getattr(dataloader.batch_sampler, "sampler", dataloader.sampler)
    return replace_sampler(dataloader, sampler, predicting=True, wrap_batch_sampler=IndexRecordingBatchSampler)


def _sampler_init_kwargs(dataloader: DataLoader, sampler: Sampler, predicting: bool,
                         wrap_batch_sampler: Optional[Callable[[Any], Any]] = None) -> Dict[str, Any]:
    batch_sampler = dataloader.batch_sampler
    # Predicting always rebuilds the batch sampler, with drop_last=False: every sample gets a prediction.
    if batch_sampler is None or (type(batch_sampler) is BatchSampler and not predicting):
        return {"sampler": sampler, "shuffle": False, "batch_sampler": None}
    # Rebuild the batch sampler around the new sampler if it follows BatchSampler's signature.
    if not (hasattr(batch_sampler, "batch_size") and hasattr(batch_sampler, "drop_last")):
        raise TypeError(
            f"cannot inject a distributed sampler into the custom batch sampler {type(batch_sampler).__name__}:"
            " give it BatchSampler's signature (sampler, batch_size, drop_last), or pass"
            " Trainer(use_distributed_sampler=False) and shard inside your batch sampler"
        )
    try:
        new_batch_sampler = type(batch_sampler)(
            sampler, batch_size=batch_sampler.batch_size, drop_last=False if predicting else batch_sampler.drop_last
        )
    except TypeError as err:
        raise TypeError(
            f"cannot re-create the custom batch sampler {type(batch_sampler).__name__}(sampler, batch_size=...,"
            f" drop_last=...) to inject a distributed sampler ({err}); pass Trainer(use_distributed_sampler=False)"
            " and shard inside your batch sampler"
        ) from err
    if wrap_batch_sampler is not None:
        new_batch_sampler = wrap_batch_sampler(new_batch_sampler)
    return {"sampler": None, "shuffle": False, "batch_sampler": new_batch_sampler, "batch_size": 1, "drop_last": False}


def replace_sampler(dataloader: DataLoader, sampler: Sampler, predicting: bool = False,
                    wrap_batch_sampler: Optional[Callable[[Any], Any]] = None) -> DataLoader:
    """A new loader of the same class and settings drawing from `sampler`."""
    attrs = {k: v for k, v in vars(dataloader).items() if not k.startswith("_")}
    attrs["multiprocessing_context"] = dataloader.multiprocessing_context
    params = dict(inspect.signature(type(dataloader).__init__).parameters)
    params.pop("self", None)
    takes_var_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    if takes_var_kwargs:  # assume **kwargs reach DataLoader.__init__
        for name, p in inspect.signature(DataLoader.__init__).parameters.items():
            params.setdefault(name, p)
        params.pop("self", None)
    kwargs = {n: v for n, v in attrs.items() if n in params and params[n].default is not v}
    kwargs["dataset"] = dataloader.dataset
    kwargs.update(_sampler_init_kwargs(dataloader, sampler, predicting, wrap_batch_sampler))
    cls_name = type(dataloader).__name__
    missing = sorted(
        p.name
        for p in params.values()
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty and p.name not in kwargs
    )
    if missing:
        raise TypeError(
            f"cannot re-create {cls_name} to inject a distributed sampler: its __init__ arguments {missing} are not"
            f" stored as attributes of the same name; store them (self.{missing[0]} = {missing[0]}), or pass"
            " Trainer(use_distributed_sampler=False) and shard the data yourself"
        )
    if not takes_var_kwargs:
        unknown = sorted(set(kwargs) - set(params))
        for name in unknown:  # DataLoader settings the subclass does not accept: only fine at their defaults
            kwargs.pop(name)
        unknown = [n for n in unknown if n in ("sampler", "batch_sampler", "shuffle")]
        if unknown:
            raise TypeError(
                f"cannot inject a distributed sampler into {cls_name}: its __init__ does not accept {unknown};"
                " accept them (or **kwargs), or pass Trainer(use_distributed_sampler=False)"
            )
    return type(dataloader)(**kwargs)


def process_dataloader(
    dataloader: Any,
    stage: str = "train",
    sampler_kwargs: Optional[Dict[str, int]] = None,
    overfit_batches: Union[int, float] = 0,
) -> Any:
    """Inject a distributed sampler when `sampler_kwargs` ({num_replicas, rank}) is given and it applies."""
    _normalize_stage(stage)
    if sampler_kwargs is None or not isinstance(dataloader, DataLoader):
        return dataloader
    if isinstance(dataloader.dataset, IterableDataset) or isinstance(dataloader.sampler, DistributedSampler):
        return dataloader
    sampler = make_distributed_sampler(dataloader, stage, overfit_batches=overfit_batches, **sampler_kwargs)
    return replace_sampler(dataloader, sampler, predicting=_normalize_stage(stage) == "predict")


def set_sampler_epoch(dataloader: Any, epoch: int) -> None:
    """Call set_epoch on the loader's sampler and batch sampler's sampler (each once), as Lightning does."""
    seen = {}
    sampler = getattr(dataloader, "sampler", None)
    if sampler is not None:
        seen[id(sampler)] = sampler
    inner = getattr(getattr(dataloader, "batch_sampler", None), "sampler", None)
    if inner is not None:
        seen[id(inner)] = inner
    for obj in seen.values():
        set_epoch = getattr(obj, "set_epoch", None)
        if callable(set_epoch):
            set_epoch(epoch)
