"""EMAWeightAveraging: WeightAveraging with an exponential moving average (Lightning 2.6's callback)."""
from typing import Any, Optional, Union

import torch

from .weight_averaging import WeightAveraging


class EMAWeightAveraging(WeightAveraging):
    """An exponential moving average of the weights: `avg = decay * avg + (1 - decay) * current`.

    Args:
        decay: the EMA decay.
        update_every_n_steps: update after every n-th optimizer step (0-based step index divisible by n; 0: never
            after a step).
        update_starting_at_step: first optimizer step index that may update (None: from the first).
        update_starting_at_epoch: if set, also update at the end of every epoch from this index on.
        device, use_buffers, kwargs: as for WeightAveraging (`avg_fn` is the EMA's).
    """

    def __init__(self, device: Optional[Union[torch.device, str, int]] = None, use_buffers: bool = True,
                 decay: float = 0.999, update_every_n_steps: int = 1, update_starting_at_step: Optional[int] = None,
                 update_starting_at_epoch: Optional[int] = None, **kwargs: Any) -> None:
        from torch.optim.swa_utils import get_ema_avg_fn

        if "avg_fn" in kwargs:
            raise TypeError("EMAWeightAveraging sets `avg_fn` itself (the EMA with `decay`); use WeightAveraging to"
                            " pass your own.")
        super().__init__(device=device, use_buffers=use_buffers, avg_fn=get_ema_avg_fn(decay=decay), **kwargs)
        self.update_every_n_steps = update_every_n_steps
        self.update_starting_at_step = update_starting_at_step
        self.update_starting_at_epoch = update_starting_at_epoch

    def should_update(self, step_idx: Optional[int] = None, epoch_idx: Optional[int] = None) -> bool:
        if step_idx is not None:
            started = self.update_starting_at_step is None or step_idx >= self.update_starting_at_step
            on_cadence = self.update_every_n_steps > 0 and step_idx % self.update_every_n_steps == 0
            if started and on_cadence:
                return True
        if epoch_idx is not None and self.update_starting_at_epoch is not None:
            return epoch_idx >= self.update_starting_at_epoch
        return False
