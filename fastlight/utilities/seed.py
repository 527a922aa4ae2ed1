"""seed_everything: one seed for python, numpy and torch, exported for worker processes."""
import os
import random
from typing import Optional

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
