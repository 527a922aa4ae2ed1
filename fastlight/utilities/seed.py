"""seed_everything: one seed for python, numpy and torch, exported for worker processes."""
import os
import random
import sys
from typing import Any, Dict, List, Optional

import torch

from .rank_zero import rank_zero_info, rank_zero_warn

_MAX_SEED = 2**32 - 1


def seed_everything(seed: Optional[int] = None, workers: bool = False, verbose: bool = True) -> int:
    """Seed random, numpy (if installed) and torch (all devices); return the seed used.

    Without a seed, PL_GLOBAL_SEED from the environment is used, else 0 (as Lightning does).
    `workers=True` sets PL_SEED_WORKERS so dataloader workers derive distinct seeds.
    """
    if seed is None:
        env = os.environ.get("PL_GLOBAL_SEED")
        if env is None:
            seed = 0
            rank_zero_warn(f"No seed found, seed set to {seed}")
        else:
            try:
                seed = int(env)
            except ValueError:
                raise ValueError(f"PL_GLOBAL_SEED={env!r} is not an integer") from None
    if not isinstance(seed, int):
        seed = int(seed)
    if not (0 <= seed <= _MAX_SEED):
        rank_zero_warn(f"{seed} is not in bounds, numpy accepts from 0 to {_MAX_SEED}; using 0")
        seed = 0
    if verbose:
        rank_zero_info(f"Seed set to {seed}")
    os.environ["PL_GLOBAL_SEED"] = str(seed)
    random.seed(seed)
    try:
        import numpy as np

        np.random.seed(seed)
    except ImportError:
        pass
    torch.manual_seed(seed)  # seeds every CUDA device too
    os.environ["PL_SEED_WORKERS"] = f"{int(workers)}"
    return seed


class isolate_rng:  # noqa: N801 (Lightning's name, used as a context manager)
    """Context manager: the global RNGs (torch CPU, CUDA when initialized, python, numpy when loaded) are put back
    on exit, so the work inside does not change the randomness of what follows."""

    def __init__(self, include_cuda: bool = True) -> None:
        self._include_cuda = include_cuda

    def __enter__(self) -> None:
        import sys

        self._torch = torch.get_rng_state()
        self._cuda = (torch.cuda.get_rng_state_all()
                      if self._include_cuda and torch.cuda.is_available() and torch.cuda.is_initialized() else None)
        self._python = random.getstate()
        np = sys.modules.get("numpy")
        self._numpy = np.random.get_state() if np is not None else None

    def __exit__(self, *exc: object) -> None:
        import sys

        torch.set_rng_state(self._torch)
        if self._cuda is not None:
            torch.cuda.set_rng_state_all(self._cuda)
        random.setstate(self._python)
        if self._numpy is not None:
            sys.modules["numpy"].random.set_state(self._numpy)


def _collect_rng_states(include_cuda: bool = True) -> Dict[str, Any]:
    """The global RNG states (torch CPU, every CUDA device once CUDA is initialized, python's `random`, numpy's legacy
    global generator when numpy is loaded), as tensors, ints, floats and tuples only, so that
    `torch.load(weights_only=True)` reads them without an allowlist (Lightning's loader included)."""
    states: Dict[str, Any] = {"torch": torch.get_rng_state()}
    if include_cuda and torch.cuda.is_available() and torch.cuda.is_initialized():
        states["torch.cuda"] = torch.cuda.get_rng_state_all()  # host-side generator state: no device sync
    version, internal, gauss = random.getstate()
    states["python"] = (version, torch.tensor(internal, dtype=torch.int64), gauss)
    np = sys.modules.get("numpy")
    if np is not None:
        kind, keys, pos, has_gauss, cached = np.random.get_state(legacy=True)
        states["numpy"] = {"kind": str(kind), "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "cached_gaussian": float(cached)}
    return states


def _set_rng_states(states: Dict[str, Any]) -> None:
    """Put back what `_collect_rng_states` returned (the parts present; CUDA devices beyond those saved keep theirs)."""
    torch.set_rng_state(states["torch"])
    cuda = states.get("torch.cuda")
    if cuda and torch.cuda.is_available():
        for index, state in enumerate(cuda[: torch.cuda.device_count()]):
            torch.cuda.set_rng_state(state, index)
    python = states.get("python")
    if python is not None:
        version, internal, gauss = python
        random.setstate((version, tuple(int(v) for v in internal.tolist()), gauss))
    saved_np = states.get("numpy")
    if saved_np is not None:
        try:
            import numpy as np
        except ImportError:  # saved by a program that had numpy: nothing here can consume its stream
            return
        np.random.set_state((saved_np["kind"], saved_np["keys"].numpy().astype(np.uint32), saved_np["pos"],
                             saved_np["has_gauss"], saved_np["cached_gaussian"]))


def reset_seed() -> None:
    """Seed again with the seed `seed_everything` set (PL_GLOBAL_SEED, with its `workers` setting); nothing when
    seed_everything was not called."""
    seed = os.environ.get("PL_GLOBAL_SEED")
    if seed is None:
        return
    seed_everything(int(seed), workers=bool(int(os.environ.get("PL_SEED_WORKERS", "0"))), verbose=False)


def pl_worker_init_function(worker_id: int, rank: Optional[int] = None) -> None:
    """A DataLoader `worker_init_fn` (the Trainer adds it after `seed_everything(..., workers=True)`): seeds torch,
    random and numpy in each worker from the worker's base seed, its id and the process's global rank, so workers (and
    ranks) draw different random streams, reproducibly and the same numbers as Lightning's workers draw."""
    from .rank_zero import rank_zero_only

    global_rank = rank if rank is not None else rank_zero_only.rank
    base_seed = torch.initial_seed() - worker_id  # torch gives worker i the seed base + i: all of base's bits
    torch_seed, random_high, random_low = _worker_seeds(base_seed, worker_id, global_rank)
    torch.manual_seed(torch_seed)
    random.seed((random_high << 32) | random_low)
    try:
        import numpy as np
    except ImportError:
        return
    np.random.seed(np.random.SeedSequence([base_seed, worker_id, global_rank]).generate_state(4))


_MASK64 = (1 << 64) - 1


def _worker_seeds(base_seed: int, worker_id: int, global_rank: int) -> List[int]:
    """Three 64-bit seeds for one worker: its (base seed, id, rank) packed into one number, mixed by MurmurHash3's
    64-bit finalizer (so that small seeds still set every bit), then stepped by Knuth's MMIX linear congruential
    generator. This is the derivation Lightning's workers use, so the streams are the same."""
    x = (base_seed << 32) | (worker_id << 16) | global_rank  # not truncated: the first shift mixes in bits 64-95
    for multiplier in (0xFF51AFD7ED558CCD, 0xC4CEB9FE1A85EC53):
        x = ((x ^ (x >> 33)) * multiplier) & _MASK64
    x ^= x >> 33
    seeds = []
    for _ in range(3):
        x = (x * 6364136223846793005 + 1) & _MASK64
        seeds.append(x)
    return seeds


__all__ = ["isolate_rng", "pl_worker_init_function", "reset_seed", "seed_everything"]
