"""SpikeDetection: stop training when the loss jumps above its running mean (Lightning's callback).

A spike is a loss that is worse than the previous one and further than `atol` and `rtol * mean` from the mean of
the last `window` losses (or a non-finite loss with finite_only). The batch and the one before it are written to a
JSON file (to skip them when resuming) and TrainingSpikeException is raised.
"""
import json
import os
from collections import deque
from typing import Any, Deque, Dict, List, Mapping, Optional, Union

import torch

from fastlight.utilities.spike import TrainingSpikeException

from . import _trainer_access as access
from .callback import Callback


class SpikeDetection(Callback):
    """Args:
        mode: "min" (lower loss is better) or "max".
        window: number of recent losses in the running mean.
        warmup: batches (by batch_idx) not checked at the start of each epoch.
        atol, rtol: absolute / relative (to the running mean) distance that counts as a spike; None: not checked.
        exclude_batches_path: JSON file (or folder for "skip_batches.json") of the bad batch indices;
            default: "<default_root_dir>/skip_batches.json".
        finite_only: a non-finite loss is a spike; with False, non-finite losses are left out of the mean instead
            (decided across ranks).
    """

    def __init__(self, mode: str = "min", window: int = 10, warmup: int = 1, atol: Optional[float] = None,
                 rtol: Optional[float] = 2.0, exclude_batches_path: Optional[Union[str, os.PathLike]] = None,
                 finite_only: bool = True) -> None:
        if mode not in ("min", "max"):
            raise ValueError(f"Invalid mode. Has to be min or max, found {mode}")
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError(f"SpikeDetection(window={window!r}) must be an int >= 1.")
        self.mode = mode
        self.window = window
        self.warmup = warmup
        self.atol = atol
        self.rtol = rtol
        self.exclude_batches_path = exclude_batches_path
        self.finite_only = finite_only
        self.last_val: Union[torch.Tensor, float] = 0.0
        self.bad_batches: List[int] = []
        self._recent: Deque[torch.Tensor] = deque(maxlen=window)

    @torch.no_grad()
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if isinstance(outputs, torch.Tensor):
            loss = outputs.detach()
        elif isinstance(outputs, Mapping):
            loss = outputs["loss"].detach()
        else:
            raise TypeError(f"outputs have to be of type torch.Tensor or Mapping, got {type(outputs).__qualname__}")
        if self.exclude_batches_path is None:
            self.exclude_batches_path = os.path.join(trainer.default_root_dir, "skip_batches.json")
        if not str(self.exclude_batches_path).endswith(".json"):
            self.exclude_batches_path = os.path.join(self.exclude_batches_path, "skip_batches.json")

        is_spike = bool(batch_idx >= self.warmup and self._is_spike(loss))
        access.barrier(trainer)
        # each rank checks its own loss; all ranks stop if any found a spike
        if access.reduce_boolean_decision(trainer, is_spike, all=False):
            self._handle_spike(trainer, batch_idx)
        elif self.finite_only or access.reduce_boolean_decision(trainer, bool(torch.isfinite(loss).all()), all=True):
            self._recent.append(loss.float())
            self.last_val = loss

    def running_mean(self) -> torch.Tensor:
        """Mean of the last `window` losses (nan before the first)."""
        if not self._recent:
            return torch.tensor(float("nan"))
        return torch.stack(list(self._recent)).sum() / len(self._recent)

    def _is_spike(self, loss: torch.Tensor) -> bool:
        mean = self.running_mean().to(loss.device)
        if self.finite_only and not torch.isfinite(loss):
            return True
        diff = loss - self.last_val
        better = bool((diff <= 0.0).all()) if self.mode == "min" else bool((diff >= 0).all())
        if better:
            return False
        return self._check_atol(loss, mean) and self._check_rtol(loss, mean)

    def _check_atol(self, a: Any, b: Any) -> bool:
        return self.atol is None or bool(abs(a - b) >= abs(self.atol))

    def _check_rtol(self, a: Any, b: Any) -> bool:
        return self.rtol is None or bool(abs(a - b) >= abs(self.rtol * b))

    def _handle_spike(self, trainer: Any, batch_idx: int) -> None:
        # the batch itself may hold the bad data; the one before may have corrupted the weights
        self.bad_batches.extend([batch_idx - 1, batch_idx])
        if getattr(trainer, "global_rank", 0) == 0:
            path = str(self.exclude_batches_path)
            os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
            with open(path, "w") as f:
                json.dump(self.bad_batches, f, indent=4)
        raise TrainingSpikeException(batch_idx=batch_idx)

    def state_dict(self) -> Dict[str, Any]:
        return {
            "last_val": self.last_val.item() if isinstance(self.last_val, torch.Tensor) else self.last_val,
            "mode": self.mode,
            "warmup": self.warmup,
            "atol": self.atol,
            "rtol": self.rtol,
            "bad_batches": self.bad_batches,
            "bad_batches_path": self.exclude_batches_path,
            "running": [float(v) for v in self._recent],
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        state = dict(state_dict)
        self.last_val = state.pop("last_val")
        self.mode = state.pop("mode")
        self.warmup = state.pop("warmup")
        self.atol = state.pop("atol")
        self.rtol = state.pop("rtol")
        self.bad_batches = state.pop("bad_batches")
        self.exclude_batches_path = state.pop("bad_batches_path")
        self._recent = deque((torch.tensor(v) for v in state.pop("running", [])), maxlen=self.window)
