"""Exact resume: what a checkpoint carries beyond Lightning's keys so that a resumed fit ends with the uninterrupted
run's weights bit for bit (the "fastlight_resume" key, docs/checkpoint_format.md), and the fit loop's side of putting
it back.

When each state is taken (the order is the whole point):

- The train iterator. `iter(loader)` draws the loader's base seed from the global torch RNG (or the loader's
  generator), and a multi-worker loader fetches its first indices there; the epoch's first `next()` is where a
  RandomSampler draws its seed and makes the whole permutation (a DataLoader runs its sampler ahead of the batch it
  returns). So the global RNGs and every torch.Generator the loader, its sampler and batch sampler hold are copied
  just before `iter(loader)` and again just before the epoch's first `next()`: once per epoch, a few microseconds.
- When a checkpoint is written: the RNGs as they are at that moment (after batch k and whatever ran after it before
  the save), the loop phase the save happened in, and the logging step counter. A save in the middle of a gradient
  accumulation window (the last batch did not step) also keeps the gradients accumulated so far: the next optimizer
  step adds the resumed batches' gradients to them (Lightning's checkpoints drop them; so would a resume).

Mid-epoch resume: the iterator is rebuilt under the first copy, the second copy is put back, the k batches already
trained are skipped (sampler indices only for a single-process map-style DataLoader; loaded and dropped otherwise; a
stateful loader loads its own state instead), then the RNGs of the save are put back, and what batch k still had to do
after the save in the uninterrupted run is done (a save in on_train_batch_end: the validation due after that batch,
the plateau schedulers, and after the epoch's last batch the epoch end; a save in the in-epoch validation: the plateau
schedulers). At an epoch boundary: the RNGs of the save are put back and the next epoch's iterator is created at its
usual place.

Under DDP every rank's state is gathered into rank 0's file (one entry per global rank) and each rank takes its own.
Known limits (documented): an iterable-style loader without len is read one batch ahead, and that batch is loaded
under the restored RNGs rather than the original ones (only matters if the iterable itself draws from the global
RNGs); a sampler that draws from the global RNG lazily per index; hooks after the save that draw random numbers and
that Lightning's restart rules do not run again.
"""
from typing import Any, Dict, List, Optional

import torch

from fastlight.core.saving import FASTLIGHT_CHECKPOINT_KEYS
from fastlight.trainer import input_path
from fastlight.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fastlight.utilities.seed import _collect_rng_states, _set_rng_states

RESUME_KEY = FASTLIGHT_CHECKPOINT_KEYS[1]  # "fastlight_resume"
FORMAT_VERSION = 1

# where in the fit loop a checkpoint was written (decides what the resumed run still has to do for that batch)
PHASE_TRAIN_BATCH_END = "train_batch_end"  # inside on_train_batch_end (ModelCheckpoint(every_n_train_steps=...))
PHASE_VALIDATION = "validation"  # inside the fit's validation (on_validation_end: the default with validation)
PHASE_BETWEEN_BATCHES = "between_batches"  # after a batch finished entirely (SIGTERM / Ctrl-C saves)
PHASE_EPOCH_END = "epoch_end"  # inside on_train_epoch_end
PHASE_OTHER = "other"


# --------------------------------------------------------------------------------------------------------------------
# snapshots of the RNGs a train loader depends on
# --------------------------------------------------------------------------------------------------------------------
def _generators(loader: Any) -> List[torch.Generator]:
    """Every torch.Generator of a DataLoader, its sampler and its batch sampler's sampler (each once)."""
    found: List[torch.Generator] = []
    for owner in (loader, getattr(loader, "sampler", None), getattr(loader, "batch_sampler", None),
                  getattr(getattr(loader, "batch_sampler", None), "sampler", None)):
        gen = getattr(owner, "generator", None)
        if isinstance(gen, torch.Generator) and all(gen is not g for g in found):
            found.append(gen)
    return found


def snapshot(loaders: List[Any]) -> Dict[str, Any]:
    return {"rng": _collect_rng_states(),
            "generators": [[g.get_state() for g in _generators(dl)] for dl in loaders]}


def put_back(snap: Dict[str, Any], loaders: List[Any]) -> None:
    _set_rng_states(snap["rng"])
    for dl, states in zip(loaders, snap.get("generators", [])):
        gens = _generators(dl)
        if len(gens) == len(states):
            for gen, state in zip(gens, states):
                gen.set_state(state)


def _distributed_samplers(loaders: List[Any]) -> List[Optional[Dict[str, int]]]:
    out: List[Optional[Dict[str, int]]] = []
    for dl in loaders:
        sampler = getattr(dl, "sampler", None)
        if sampler is not None and hasattr(sampler, "seed") and hasattr(sampler, "epoch"):
            out.append({"epoch": int(sampler.epoch), "seed": int(sampler.seed)})
        else:
            out.append(None)
    return out


def is_stateful(loader: Any) -> bool:
    """Lightning's `_Stateful` protocol (torchdata's StatefulDataLoader and the like)."""
    return callable(getattr(loader, "state_dict", None)) and callable(getattr(loader, "load_state_dict", None))


# --------------------------------------------------------------------------------------------------------------------
# save
# --------------------------------------------------------------------------------------------------------------------
def _phase(trainer: Any) -> str:
    loop = trainer.fit_loop
    if loop._stopping_at_boundary:
        return PHASE_BETWEEN_BATCHES
    if trainer.validating and not trainer.sanity_checking and trainer.state.fn == "fit":
        return PHASE_VALIDATION  # the fit's validation (it runs with trainer.training off)
    if not trainer.training:
        return PHASE_OTHER
    fx = getattr(trainer.lightning_module, "_current_fx_name", None)
    if fx == "on_train_batch_end":
        return PHASE_TRAIN_BATCH_END
    if fx == "on_train_epoch_end":
        return PHASE_EPOCH_END
    return PHASE_OTHER


def _partial_gradients(trainer: Any) -> Optional[Dict[str, torch.Tensor]]:
    """The gradients accumulated since the window's last optimizer step, by parameter name, when the save falls inside
    an accumulation window of automatic optimization (the last batch run only accumulated); None otherwise."""
    loop = trainer.fit_loop
    if getattr(trainer.state, "fn", None) != "fit" or not getattr(loop, "_automatic", True):
        return None
    # no accumulation window is open before the loop has run a batch (a checkpoint saved in on_fit_start, e.g. by
    # the batch-size / lr finder)
    if not loop._accumulating or loop.epoch_batch_idx < 0:
        return None
    module = trainer.lightning_module
    return {name: p.grad.detach().clone() for name, p in module.named_parameters() if p.grad is not None}


def rank_state(trainer: Any) -> Dict[str, Any]:
    """This process's part: RNGs now, the loop phase, the train iterator's snapshots, a window's partial gradients."""
    loop = trainer.fit_loop
    loaders = loop._train_loaders() if loop.loader is not None else []
    record = loop._iter_record
    state = {
        "rng": _collect_rng_states(),
        "phase": _phase(trainer) if getattr(trainer.state, "fn", None) == "fit" else PHASE_OTHER,
        "batches_that_stepped": int(trainer._batches_that_stepped),
        "train_iterator": dict(record) if record is not None else None,
        "samplers": _distributed_samplers(loaders),
    }
    grads = _partial_gradients(trainer)
    if grads is not None:
        state["partial_gradients"] = grads
    return state


class _PackedTensor:
    """A tensor as raw bytes for the gather: pickling a tensor itself goes through torch.save (a second,
    legacy-format serialization per tensor, and calls a program watching torch.save would count as saves)."""

    def __init__(self, tensor: torch.Tensor) -> None:
        flat = tensor.detach().contiguous().reshape(-1)
        self.dtype, self.shape, self.device = tensor.dtype, tuple(tensor.shape), str(tensor.device)
        self.data = flat.view(torch.uint8).cpu().numpy().tobytes() if flat.numel() else b""

    def unpack(self) -> torch.Tensor:
        if self.data:
            raw = torch.frombuffer(bytearray(self.data), dtype=torch.uint8)
        else:
            raw = torch.empty(0, dtype=torch.uint8)
        return raw.view(self.dtype).reshape(self.shape).to(self.device)


def _pack_tensors(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return _PackedTensor(obj)
    if isinstance(obj, dict):
        return {k: _pack_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):  # not namedtuples: kept as they are
        return type(obj)(_pack_tensors(v) for v in obj)
    return obj


def _unpack_tensors(obj: Any) -> Any:
    if isinstance(obj, _PackedTensor):
        return obj.unpack()
    if isinstance(obj, dict):
        return {k: _unpack_tensors(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
        return type(obj)(_unpack_tensors(v) for v in obj)
    return obj


def dump(trainer: Any) -> Optional[Dict[str, Any]]:
    """The "fastlight_resume" entry (every rank calls this; under DDP the ranks' states are gathered, a collective at
    checkpoint time only). None for a trainer without a fit loop."""
    if getattr(trainer, "fit_loop", None) is None or not hasattr(trainer.fit_loop, "_iter_record"):
        return None
    mine = rank_state(trainer)
    world = int(getattr(trainer, "world_size", 1) or 1)
    ranks = [mine]
    if world > 1:
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            ranks = [None] * world
            dist.all_gather_object(ranks, _pack_tensors(mine))
            ranks = [_unpack_tensors(state) for state in ranks]
        else:
            world = 1
    return {"format": FORMAT_VERSION, "world_size": world, "ranks": ranks}


# --------------------------------------------------------------------------------------------------------------------
# restore
# --------------------------------------------------------------------------------------------------------------------
def state_for_this_rank(trainer: Any, checkpoint: Dict[str, Any], source: str) -> Optional[Dict[str, Any]]:
    """This rank's entry of a restored checkpoint, or None (said once) when the file has none or it does not fit."""
    entry = checkpoint.get(RESUME_KEY)
    if entry is None:
        rank_zero_info(
            f"The checkpoint {source} holds no random-number or data-loader state (written by Lightning or an older"
            " fastlight): the resumed run goes on with the current RNG state, so dropout and shuffling may differ"
            " from an uninterrupted run."
        )
        return None
    if not isinstance(entry, dict) or entry.get("format") != FORMAT_VERSION:
        rank_zero_warn(f"The checkpoint {source} has a {RESUME_KEY!r} entry of an unknown format; it is ignored"
                       " (the random state is not restored).")
        return None
    world = int(getattr(trainer, "world_size", 1) or 1)
    if entry.get("world_size") != world or len(entry.get("ranks", ())) != world:
        rank_zero_warn(
            f"The checkpoint {source} was written by {entry.get('world_size')} process(es) and this run has {world}:"
            " the random and data-loader state is not restored (the resumed run will not be bit-identical)."
        )
        return None
    return entry["ranks"][int(getattr(trainer, "global_rank", 0) or 0)]


def on_resume(loop: Any, state: Dict[str, Any], point: Any) -> None:
    """Called once the restored counters are applied (`point` is where the fit goes on)."""
    trainer = loop.trainer
    loaders = loop._train_loaders() if loop.loader is not None else []
    for dl, saved in zip(loaders, state.get("samplers") or []):
        sampler = getattr(dl, "sampler", None)
        if saved is not None and sampler is not None and hasattr(sampler, "seed"):
            sampler.seed = saved["seed"]  # the epoch is set by the loop at each epoch start
    # the value at the save; a batch whose tail is replayed counts itself there (FitLoop._after_batch)
    trainer._batches_that_stepped = state["batches_that_stepped"]
    record = state.get("train_iterator")
    if point.mid_epoch and record is not None and record.get("epoch") == point.epoch:
        loop._exact_pending = state  # FitLoop._run_epoch rebuilds the iterator, then `finish` runs
        return
    # an epoch boundary: the RNGs of the save now; the next epoch's iterator is created at its usual place
    _set_rng_states(state["rng"])
    if not loop._stateful_loaded:  # a stateful loader's iterator (setup_data's) carries its own position and RNGs
        loop._iterator = None
        loop._iter_record = None
    if point.mid_epoch:
        loop._exact_pending = {**state, "train_iterator": None}


def rebuild_iterator(loop: Any, state: Dict[str, Any], batches_done: int) -> Any:
    """The epoch's train iterator as the uninterrupted run had it after `batches_done` batches."""
    record = state.get("train_iterator")
    if loop._stateful_loaded:  # the loaders restored their own position and RNGs when setup_data created it
        if record is not None:
            loop._iter_record = record
        loop.epoch_batch_idx = batches_done - 1
        return loop._iterator
    loaders = loop._train_loaders()
    if record is not None:
        put_back(record["at_iter"], loaders)
    iterator = input_path.iterate(loop.loader, loop.trainer._cfg.batched_input)
    if record is not None:
        loop._iter_record = record
        if record.get("at_first_next") is not None:
            put_back(record["at_first_next"], loaders)
    if batches_done:
        loop._fast_forward(iterator, batches_done, exact=True)
    return iterator


def finish(loop: Any, state: Dict[str, Any]) -> None:
    """The RNGs of the save, then what the saved batch still had to do after the save."""
    if loop.epoch_batch_idx < 0:
        # no batch of this epoch had finished: its first next() (which the save came after) must run again under
        # the state `at_first_next` put back, not under the later one of the save
        return
    _set_rng_states(state["rng"])
    _put_back_gradients(loop, state.get("partial_gradients"))
    phase = state["phase"]
    loop.is_last_batch = loop._batch_progress.is_last_batch
    loop._accumulating = loop._should_accumulate()
    if phase == PHASE_TRAIN_BATCH_END:
        loop._after_batch()
    elif phase == PHASE_VALIDATION:
        if loop._validation_was_interrupted():
            # run the whole validation again: its epoch metrics are then the uninterrupted run's (the values its
            # finished batches had logged are not in the checkpoint); the RNGs go back to the save's afterwards, so
            # the new loader iterator's seed draw does not shift the training that follows
            loop._after_batch(force_validation=True)
            _set_rng_states(state["rng"])
        else:  # saved when it had finished (on_validation_end: ModelCheckpoint's default)
            loop._after_batch(run_validation=False)


def _put_back_gradients(loop: Any, grads: Optional[Dict[str, torch.Tensor]]) -> None:
    """The accumulation window's gradients of the save, into `.grad` (copied into an existing gradient tensor, so the
    fused engine's flat-buffer views and a captured graph's static gradients stay the tensors they are)."""
    if not grads:
        return
    params = dict(loop.trainer.lightning_module.named_parameters())
    unknown = sorted(set(grads) - set(params))
    if unknown:
        raise RuntimeError(f"The checkpoint's accumulated gradients name parameters this model does not have:"
                           f" {unknown[:5]}. Resume with the model that wrote the checkpoint.")
    with torch.no_grad():
        for name, p in params.items():
            g = grads.get(name)
            if g is None:  # no gradient in the window: None, as zero_grad left it (a zero would move Adam's moments)
                p.grad = None
            elif p.grad is not None and p.grad.shape == g.shape:
                p.grad.copy_(g)
            else:
                p.grad = g.to(device=p.device, dtype=p.dtype).clone()


def loader_states(loop: Any) -> List[Dict[str, Any]]:
    """The stateful train loaders' state_dicts (Lightning writes them under loops.fit_loop.state_dict.combined_loader)."""
    if loop.loader is None:
        return []
    return [dl.state_dict() for dl in loop._train_loaders() if is_stateful(dl)]


def load_stateful(loop: Any) -> bool:
    """Load the checkpoint's stateful-loader states (True when every train loader is stateful and got one)."""
    states, loop._loader_states_to_load = loop._loader_states_to_load, []
    if not states:
        return False
    loaders = [dl for dl in loop._train_loaders() if is_stateful(dl)]
    if len(loaders) != len(states):
        raise RuntimeError(
            f"The train loaders include {len(loaders)} stateful loader(s), but the checkpoint holds {len(states)}"
            " loader state(s). Define the same dataloaders that were used when saving the checkpoint."
        )
    for dl, st in zip(loaders, states):
        dl.load_state_dict(st)
    return len(loaders) == len(loop._train_loaders())
