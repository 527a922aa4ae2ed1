"""How callbacks read the Trainer: Lightning's public attributes first, then the few loop counters they need.

Each helper names the attribute it reads, so a Trainer (fastlight's or a test's fake) only has to provide those.
Strategy calls (broadcast, barrier, reduce_boolean_decision, remove_checkpoint) fall back to single-process behaviour
when the trainer has no strategy yet.
"""
from typing import Any, Optional

import torch


def trainer_fn(trainer: Any) -> Optional[str]:
    """trainer.state.fn as a plain string ("fit", "validate", "test", "predict"), whatever enum type holds it."""
    state = getattr(trainer, "state", None)
    fn = getattr(state, "fn", None)
    return getattr(fn, "value", fn)


def is_fitting(trainer: Any) -> bool:
    return trainer_fn(trainer) == "fit"


def broadcast(trainer: Any, obj: Any, src: int = 0) -> Any:
    strategy = getattr(trainer, "strategy", None)
    fn = getattr(strategy, "broadcast", None)
    return fn(obj, src) if fn is not None else obj


def reduce_boolean_decision(trainer: Any, decision: bool, all: bool = True) -> bool:
    strategy = getattr(trainer, "strategy", None)
    fn = getattr(strategy, "reduce_boolean_decision", None)
    return bool(fn(decision, all=all)) if fn is not None else bool(decision)


def barrier(trainer: Any, name: Optional[str] = None) -> None:
    strategy = getattr(trainer, "strategy", None)
    fn = getattr(strategy, "barrier", None)
    if fn is not None:
        fn(name)


def remove_checkpoint(trainer: Any, filepath: str) -> None:
    io = getattr(trainer, "checkpoint_io", None)
    if io is not None:  # a CheckpointIO plugin saved it, so it removes it (AsyncCheckpointIO: after the write ends)
        if getattr(trainer, "is_global_zero", True):
            io.remove_checkpoint(filepath)
        return
    strategy = getattr(trainer, "strategy", None)
    fn = getattr(strategy, "remove_checkpoint", None)
    if fn is not None:
        fn(filepath)
    elif getattr(trainer, "is_global_zero", True):
        from fastlight.utilities.checkpoint_io import remove_checkpoint as remove_file

        remove_file(filepath)  # a file another rank or an earlier rotation removed is fine


def batches_that_stepped(trainer: Any) -> int:
    """The step loggers are given (Lightning: fit_loop.epoch_loop._batches_that_stepped); fastlight's Trainer exposes
    it as `trainer._batches_that_stepped`, else global_step is the best stand-in."""
    fit_loop = getattr(trainer, "fit_loop", None)
    value = getattr(getattr(fit_loop, "epoch_loop", None), "_batches_that_stepped", None)
    if value is None:
        value = getattr(trainer, "_batches_that_stepped", None)
    return int(trainer.global_step if value is None else value)


def should_update_logs(trainer: Any) -> bool:
    """Lightning's logger_connector.should_update_logs: the coming step is a logging step, or training is stopping."""
    every = getattr(trainer, "log_every_n_steps", 50)
    if every == 0:  # Lightning: never
        return False
    return (batches_that_stepped(trainer) + 1) % every == 0 or bool(getattr(trainer, "should_stop", False))


def is_last_batch(trainer: Any) -> bool:
    """Lightning: fit_loop.epoch_loop.batch_progress.is_last_batch; fastlight: trainer.is_last_batch."""
    fit_loop = getattr(trainer, "fit_loop", None)
    progress = getattr(getattr(fit_loop, "epoch_loop", None), "batch_progress", None)
    if progress is not None and hasattr(progress, "is_last_batch"):
        return bool(progress.is_last_batch)
    return bool(getattr(trainer, "is_last_batch", False))


def val_loop_has_run(trainer: Any) -> bool:
    """Lightning: fit_loop.epoch_loop.val_loop._has_run; fastlight: trainer.validation_has_run."""
    fit_loop = getattr(trainer, "fit_loop", None)
    val_loop = getattr(getattr(fit_loop, "epoch_loop", None), "val_loop", None)
    if val_loop is not None and hasattr(val_loop, "_has_run"):
        return bool(val_loop._has_run)
    return bool(getattr(trainer, "validation_has_run", False))


def total_val_batches(trainer: Any) -> float:
    n = getattr(trainer, "num_val_batches", 0)
    if isinstance(n, (list, tuple)):
        return sum(n)
    return n or 0


def root_device(trainer: Any) -> torch.device:
    strategy = getattr(trainer, "strategy", None)
    device = getattr(strategy, "root_device", None)
    if device is not None:
        return device
    module = getattr(trainer, "lightning_module", None)
    if module is not None:
        for p in module.parameters():
            return p.device
    return torch.device("cpu")


def log_metrics(trainer: Any, metrics: dict, step: Optional[int] = None) -> None:
    """Send metrics to the loggers the way `self.log` results go (Lightning: trainer._logger_connector.log_metrics;
    with step None, "epoch" is added and the step is the batches that stepped)."""
    connector = getattr(trainer, "_logger_connector", None)
    if connector is None:
        connector = getattr(trainer, "_hub")
    connector.log_metrics(metrics, step=step)

