"""Throughput: rolling-window rates (batches, samples, items, FLOPs per second) from cumulative counters.

Same metric names and windowing as lightning_fabric's Throughput: totals ("time", "batches", "samples", "lengths")
are always reported; the per-second rates appear once `window_size` updates have been seen and are computed between
the oldest and newest update in the window. Global ("batches_per_sec", ...) rates only when world_size > 1.
"""
from collections import deque
from typing import Callable, Deque, Dict, List, Optional, Union

import torch


class _IncreasingWindow:
    """The last `maxlen` values of a counter that must grow strictly with each append."""

    __slots__ = ("maxlen", "values")

    def __init__(self, maxlen: int) -> None:
        self.maxlen = maxlen
        self.values: Deque[Union[int, float]] = deque(maxlen=maxlen)

    def append(self, x: Union[int, float]) -> None:
        if self.values and self.values[-1] >= x:
            raise ValueError(f"Expected the value to increase, last: {self.values[-1]}, current: {x}")
        self.values.append(x)

    def full(self) -> bool:
        return len(self.values) == self.maxlen

    def span(self) -> Union[int, float]:
        return self.values[-1] - self.values[0]

    def clear(self) -> None:
        self.values.clear()

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, i: int) -> Union[int, float]:
        return self.values[i]

    def __bool__(self) -> bool:
        return bool(self.values)


class Throughput:
    """Args:
        available_flops: theoretical FLOPs per second of one device (gives "device/mfu").
        world_size: number of devices; global rates are added when it is above 1.
        window_size: number of updates the rates are averaged over (at least 2).
        separator: between "device" and the rate name.
    """

    def __init__(self, available_flops: Optional[float] = None, world_size: int = 1, window_size: int = 100,
                 separator: str = "/") -> None:
        if not isinstance(world_size, int) or world_size < 1:
            raise ValueError(f"Throughput(world_size={world_size!r}) must be an int >= 1.")
        if not isinstance(window_size, int) or window_size < 2:
            raise ValueError(f"Throughput(window_size={window_size!r}) must be an int >= 2 (a rate needs two points).")
        self.available_flops = available_flops
        self.world_size = world_size
        self.separator = separator
        self._time = _IncreasingWindow(window_size)
        self._batches = _IncreasingWindow(window_size)
        self._samples = _IncreasingWindow(window_size)
        self._lengths = _IncreasingWindow(window_size)
        self._flops: Deque[float] = deque(maxlen=window_size)

    def update(self, *, time: float, batches: int, samples: int, lengths: Optional[int] = None,
               flops: Optional[float] = None) -> None:
        """time, batches, samples, lengths: running totals on this device; flops: this update's FLOPs per device."""
        self._time.append(time)
        if samples < batches:
            raise ValueError(f"Expected samples ({samples}) to be greater or equal than batches ({batches})")
        self._batches.append(batches)
        self._samples.append(samples)
        if lengths is not None:
            if lengths < samples:
                raise ValueError(f"Expected lengths ({lengths}) to be greater or equal than samples ({samples})")
            self._lengths.append(lengths)
            if len(self._lengths) != len(self._samples):
                raise RuntimeError(
                    f"If lengths are passed ({len(self._lengths)}), there needs to be the same number of samples"
                    f" ({len(self._samples)})"
                )
        if flops is not None:
            self._flops.append(flops * self.world_size)

    def compute(self) -> Dict[str, Union[int, float]]:
        sep, world = self.separator, self.world_size
        metrics: Dict[str, Union[int, float]] = {
            "time": self._time[-1], "batches": self._batches[-1], "samples": self._samples[-1],
        }
        if self._lengths:
            metrics["lengths"] = self._lengths[-1]
        if self._time.full():
            elapsed = self._time.span()
            batches_per_sec = self._batches.span() / elapsed
            samples_per_sec = self._samples.span() / elapsed
            metrics[f"device{sep}batches_per_sec"] = batches_per_sec
            metrics[f"device{sep}samples_per_sec"] = samples_per_sec
            if world > 1:
                metrics["batches_per_sec"] = batches_per_sec * world
                metrics["samples_per_sec"] = samples_per_sec * world
            if self._lengths.full():
                items_per_sec = self._lengths.span() / elapsed
                metrics[f"device{sep}items_per_sec"] = items_per_sec
                if world > 1:
                    metrics["items_per_sec"] = items_per_sec * world
        if len(self._flops) == self._flops.maxlen:
            # the oldest entry's FLOPs were spent before the window's first timestamp: left out, as in Lightning
            flops_per_sec = (sum(self._flops) - self._flops[0]) / self._time.span()
            if world > 1:
                metrics["flops_per_sec"] = flops_per_sec
            metrics[f"device{sep}flops_per_sec"] = flops_per_sec / world
            if self.available_flops:
                metrics[f"device{sep}mfu"] = flops_per_sec / world / self.available_flops
        return metrics

    def reset(self) -> None:
        for window in (self._time, self._batches, self._samples, self._lengths, self._flops):
            window.clear()

    @property
    def times(self) -> List[float]:
        return list(self._time.values)


def measure_flops(model: torch.nn.Module, forward_fn: Callable[[], torch.Tensor],
                  loss_fn: Optional[Callable[[torch.Tensor], torch.Tensor]] = None) -> int:
    """FLOPs of one `forward_fn()` call (and of the loss and backward when `loss_fn` is given), counted by torch's
    FlopCounterMode. Build the model on the meta device to count without computing:
    `with torch.device("meta"): model = Net(); x = torch.randn(2, 32)`."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        out = forward_fn()
        if loss_fn is not None:
            loss_fn(out).backward()
    return counter.get_total_flops()
