"""DeviceStatsMonitor: log the device's stats (CUDA allocator stats; CPU stats through psutil) around each batch.

Keys are Lightning's: "DeviceStatsMonitor.<hook_name><separator><stat>", logged straight to every logger at the
step Lightning uses (batches that stepped), on the steps where Lightning updates its logs.
"""
from typing import Any, Dict, Optional

import torch

from . import _trainer_access as access
from .callback import Callback

_PSUTIL_MISSING = "`psutil` is not installed: `pip install psutil`."


def _psutil_available() -> bool:
    try:
        import psutil  # noqa: F401
    except ImportError:
        return False
    return True


def get_cpu_stats() -> Dict[str, float]:
    """System-wide CPU, RAM and swap use in percent (Lightning's CPU accelerator stats)."""
    if not _psutil_available():
        raise ModuleNotFoundError(f"Fetching CPU device stats requires `psutil` to be installed. {_PSUTIL_MISSING}")
    import psutil

    return {
        "cpu_vm_percent": psutil.virtual_memory().percent,
        "cpu_percent": psutil.cpu_percent(),
        "cpu_swap_percent": psutil.swap_memory().percent,
    }


def get_device_stats(device: torch.device) -> Dict[str, Any]:
    if device.type == "cuda":
        return torch.cuda.memory_stats(device)
    return get_cpu_stats()  # CPU (and MPS, whose stats Lightning also takes from psutil)


class DeviceStatsMonitor(Callback):
    """Args:
        cpu_stats: None: CPU stats only when training on the CPU; True: always add them; False: never.
    """

    def __init__(self, cpu_stats: Optional[bool] = None) -> None:
        if cpu_stats is not None and not isinstance(cpu_stats, bool):
            raise TypeError(f"DeviceStatsMonitor(cpu_stats={cpu_stats!r}): expected None, True or False.")
        self._cpu_stats = cpu_stats
        self._eval_batches = 0

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage != "fit":
            return
        if not trainer.loggers:
            raise ValueError("Cannot use `DeviceStatsMonitor` callback with `Trainer(logger=False)`.")
        device = access.root_device(trainer)
        if self._cpu_stats is None and device.type == "cpu" and not _psutil_available():
            raise ModuleNotFoundError(f"`DeviceStatsMonitor` cannot log CPU stats as {_PSUTIL_MISSING}")

    def _should_update_logs(self, trainer: Any, evaluating: bool) -> bool:
        every = getattr(trainer, "log_every_n_steps", 50)
        if every == 0:
            return False
        if evaluating:  # Lightning counts the batches of the running evaluation
            return self._eval_batches % every == 0
        return access.should_update_logs(trainer)

    def _log_stats(self, trainer: Any, key: str, evaluating: bool = False) -> None:
        if not self._should_update_logs(trainer, evaluating):
            return
        device = access.root_device(trainer)
        if self._cpu_stats is False and device.type == "cpu":
            return
        stats = get_device_stats(device)
        if self._cpu_stats and device.type != "cpu":
            stats.update(get_cpu_stats())
        step = access.batches_that_stepped(trainer)
        prefix = f"{type(self).__qualname__}.{key}"
        for logger in trainer.loggers:
            separator = getattr(logger, "group_separator", "/")
            logger.log_metrics({prefix + separator + k: v for k, v in stats.items()}, step=step)

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        self._log_stats(trainer, "on_train_batch_start")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        self._log_stats(trainer, "on_train_batch_end")

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._eval_batches = 0

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._eval_batches = 0

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                                  dataloader_idx: int = 0) -> None:
        self._eval_batches += 1
        self._log_stats(trainer, "on_validation_batch_start", evaluating=True)

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                                dataloader_idx: int = 0) -> None:
        self._log_stats(trainer, "on_validation_batch_end", evaluating=True)

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int,
                            dataloader_idx: int = 0) -> None:
        self._eval_batches += 1
        self._log_stats(trainer, "on_test_batch_start", evaluating=True)

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int,
                          dataloader_idx: int = 0) -> None:
        self._log_stats(trainer, "on_test_batch_end", evaluating=True)
