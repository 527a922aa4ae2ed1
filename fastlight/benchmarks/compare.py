"""One LightningModule trained three ways over the same DataLoader, for side-by-side timing: by a framework's
Trainer (fastlight or pytorch_lightning, everything but the training loop turned off), and by a raw PyTorch loop
(the module's training_step, backward, and the optimizer from its configure_optimizers; no logging).

Each runner trains `steps` steps from a fresh module and returns when the device is idle, so the harness's
(t(long) - t(short)) difference is the cost of the extra steps. `raw_split` runs the raw loop with a timer at
each phase boundary (on CUDA with a synchronize there: used only to split a step's time, never for the totals).
"""
import contextlib
import statistics
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

import torch
from torch.utils._pytree import tree_map

TRAINER_KWARGS = dict(max_epochs=-1, devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                      enable_checkpointing=False, num_sanity_val_steps=0, limit_val_batches=0)

_PRECISIONS = {  # name -> (autocast dtype or None, parameter dtype or None)
    "32": (None, None), "32-true": (None, None),
    "64": (None, torch.float64), "64-true": (None, torch.float64),
    "16-mixed": (torch.float16, None), "16": (torch.float16, None),
    "bf16-mixed": (torch.bfloat16, None), "bf16": (torch.bfloat16, None),
    "16-true": (None, torch.float16), "bf16-true": (None, torch.bfloat16),
}


class CandidateError(Exception):
    """A candidate cannot run this module; the message says why (shown in its row instead of numbers)."""


def check_precision(precision: str) -> None:
    if str(precision) not in _PRECISIONS:
        raise ValueError(f"--precision {precision!r}: expected one of {', '.join(_PRECISIONS)}")


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def framework_run(pl, factory: Callable[[], Any], loader, device: str, precision: str, steps: int, root: str,
                  **extra) -> None:
    """`steps` training steps of a fresh module under `pl.Trainer` (fastlight or pytorch_lightning)."""
    torch.manual_seed(0)
    module = factory()
    trainer = pl.Trainer(max_steps=steps, accelerator=device.split(":")[0], precision=precision,
                         default_root_dir=root, **TRAINER_KWARGS, **extra)
    trainer.fit(module, train_dataloaders=loader)
    synchronize(device)


def _no_log(*args, **kwargs) -> None:
    return None


def _first_optimizer(config) -> Tuple[torch.optim.Optimizer, Optional[Any], str]:
    """(optimizer, scheduler or None, scheduler interval) from what configure_optimizers returned."""
    sched, interval = None, "epoch"
    if isinstance(config, torch.optim.Optimizer):
        return config, None, interval
    if isinstance(config, dict):
        opt = config.get("optimizer")
        s = config.get("lr_scheduler")
        if isinstance(s, dict):
            sched, interval = s.get("scheduler"), s.get("interval", "epoch")
        else:
            sched = s
        if isinstance(opt, torch.optim.Optimizer):
            return opt, sched, interval
    if isinstance(config, (list, tuple)) and config:
        if len(config) == 2 and isinstance(config[0], (list, tuple)):  # ([optimizers], [schedulers])
            opts, scheds = config
            if len(opts) == 1:
                opt, _, _ = _first_optimizer(opts[0])
                s = scheds[0] if scheds else None
                if isinstance(s, dict):
                    return opt, s.get("scheduler"), s.get("interval", "epoch")
                return opt, s, interval
        elif len(config) == 1:
            return _first_optimizer(config[0])
    raise CandidateError("raw loop: configure_optimizers must return one optimizer (optionally with one LR "
                         f"scheduler); got {type(config).__name__}")


class _Timers:
    """Per-step phase times of the raw loop; a synchronize before each reading on CUDA."""

    def __init__(self, device: str):
        self.device = device
        self.phases: Dict[str, List[float]] = {"data": [], "forward_backward": [], "optimizer": []}
        self._t = 0.0

    def start(self) -> None:
        synchronize(self.device)
        self._t = time.perf_counter()

    def lap(self, phase: str) -> None:
        synchronize(self.device)
        now = time.perf_counter()
        self.phases[phase].append(now - self._t)
        self._t = now


def _batches(loader) -> Iterator[Tuple[int, Any]]:
    """(batch_idx, batch) forever, epoch after epoch, as the Trainers iterate with max_epochs=-1."""
    while True:
        empty = True
        for i, batch in enumerate(loader):
            empty = False
            yield i, batch
        if empty:
            raise CandidateError("the training DataLoader yields no batches")


def raw_run(factory: Callable[[], Any], loader, device: str, precision: str, steps: int,
            timers: Optional[_Timers] = None) -> None:
    """`steps` steps of a plain loop over the module: training_step (self.log a no-op), backward, the optimizer
    of configure_optimizers (torch.amp.GradScaler for 16-mixed on CUDA), zero_grad(set_to_none=True), a
    step-interval LR scheduler per step, an epoch-interval one per epoch."""
    torch.manual_seed(0)
    module = factory()
    if not getattr(module, "automatic_optimization", True):
        raise CandidateError("raw loop: the module uses manual optimization (automatic_optimization=False)")
    module.log = _no_log  # no trainer to log to; the frameworks' logging is part of their overhead
    module.log_dict = _no_log
    autocast_dtype, param_dtype = _PRECISIONS[str(precision)]
    dev_type = device.split(":")[0]
    if dev_type == "cpu" and autocast_dtype is torch.float16:
        autocast_dtype = torch.bfloat16  # as both frameworks do: fp16 autocast is not offered on the CPU
    module.to(device)
    if param_dtype is not None:
        module.to(param_dtype)
    module.train()
    opt, sched, interval = _first_optimizer(module.configure_optimizers())
    if isinstance(sched, torch.optim.lr_scheduler.ReduceLROnPlateau):
        sched = None  # it steps on a monitored metric, which the raw loop does not compute
    scaler = torch.amp.GradScaler(dev_type) if autocast_dtype is torch.float16 else None
    autocast = (lambda: torch.autocast(dev_type, dtype=autocast_dtype)) if autocast_dtype is not None \
        else contextlib.nullcontext

    def move(t):
        if not isinstance(t, torch.Tensor):
            return t
        t = t.to(device, non_blocking=True)
        return t.to(param_dtype) if param_dtype is not None and t.is_floating_point() else t

    step = 0
    if timers is not None:
        timers.start()
    for batch_idx, batch in _batches(loader):
        if batch_idx == 0 and step > 0 and sched is not None and interval == "epoch":
            sched.step()
        batch = tree_map(move, batch)
        if timers is not None:
            timers.lap("data")
        with autocast():
            out = module.training_step(batch, batch_idx)
        loss = out["loss"] if isinstance(out, dict) else out
        if not isinstance(loss, torch.Tensor):
            raise CandidateError(f"raw loop: training_step returned {type(out).__name__}, not a loss tensor")
        if scaler is not None:
            scaler.scale(loss).backward()
        else:
            loss.backward()
        if timers is not None:
            timers.lap("forward_backward")
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        opt.zero_grad(set_to_none=True)
        if sched is not None and interval == "step":
            sched.step()
        if timers is not None:
            timers.lap("optimizer")
        step += 1
        if step >= steps:
            break
    synchronize(device)


def raw_split(factory: Callable[[], Any], loader, device: str, precision: str, steps: int,
              skip: int) -> Dict[str, float]:
    """Median seconds per step of each phase of the raw loop (the first `skip` steps left out)."""
    timers = _Timers(device)
    raw_run(factory, loader, device, precision, steps, timers)
    return {k: statistics.median(v[skip:] or v) for k, v in timers.phases.items()}


def kernel_ms_per_step(run: Callable[[int], None], long: int, short: int) -> float:
    """GPU kernel (and memcpy/memset) time per step from torch.profiler's CUDA activity:
    (K(long run) - K(short run)) / (long - short), so set-up work drops out. The step's time bound if the
    host kept the GPU busy all the time."""
    from torch.profiler import ProfilerActivity, profile

    totals = []
    for steps in (long, short):
        with profile(activities=[ProfilerActivity.CUDA]) as prof:
            run(steps)
        totals.append(sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages()))
    return (totals[0] - totals[1]) / 1e3 / (long - short)
