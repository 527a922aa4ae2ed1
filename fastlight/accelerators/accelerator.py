"""Accelerator: the kind of device a run trains on (`lightning.pytorch.accelerators.Accelerator`).

fastlight's Trainer picks devices from `accelerator=` / `devices=` (trainer/config.py); an Accelerator object
passed as `Trainer(accelerator=CPUAccelerator())` stands for its name ("cpu", "cuda", "mps"). The classes
also answer the questions user code asks them: is the device available, how many are there, which devices does a
`devices=` value select, what are a device's memory stats.
"""
from abc import ABC, abstractmethod
from typing import Any, Dict, List, Optional, Union

import torch


class Accelerator(ABC):
    """Base class of the accelerators. Subclasses name themselves with `name()`; `register_accelerators` adds them to
    the AcceleratorRegistry."""

    def setup_device(self, device: torch.device) -> None:
        """Make `device` the process's current device (called once per process before training)."""

    def setup(self, trainer: Any) -> None:
        """Called by the Trainer once the run is set up (nothing to do for CPU/CUDA)."""

    def teardown(self) -> None:
        """Release what setup_device acquired."""

    @staticmethod
    @abstractmethod
    def parse_devices(devices: Any) -> Any:
        """The device selection `Trainer(devices=...)` means for this accelerator."""

    @staticmethod
    @abstractmethod
    def get_parallel_devices(devices: Any) -> List[torch.device]:
        """The torch devices of the selection."""

    @staticmethod
    @abstractmethod
    def auto_device_count() -> int:
        """How many devices `devices="auto"` uses."""

    @staticmethod
    @abstractmethod
    def is_available() -> bool:
        """Whether this kind of device exists on this machine."""

    @abstractmethod
    def get_device_stats(self, device: Union[str, torch.device]) -> Dict[str, Any]:
        """Device statistics for DeviceStatsMonitor."""

    @classmethod
    def name(cls) -> str:
        """The `Trainer(accelerator=...)` string this class stands for."""
        raise NotImplementedError(f"{cls.__name__} does not name a Trainer accelerator")

    @classmethod
    def register_accelerators(cls, accelerator_registry: Any) -> None:
        pass


def _device_ids(devices: Any, available: int) -> Optional[List[int]]:
    """Lightning's `devices=` forms for indexed devices: int n (the first n; -1 all; 0 none), "n", "0,2", "-1",
    a list of ids. None: no device selected."""
    if devices is None or devices == 0 or devices == "0" or devices == []:
        return None
    if isinstance(devices, bool):
        raise TypeError(f"devices={devices!r} is not a device count or list of device ids")
    if devices in (-1, "-1", "auto"):
        return list(range(available))
    if isinstance(devices, str):
        text = devices.strip().strip("[]")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not parts or not all(p.lstrip("-").isdigit() for p in parts):
            raise TypeError(f"devices={devices!r}: expected a count ('2'), ids ('0,1'), '-1' or 'auto'")
        if len(parts) == 1 and "," not in text:
            return list(range(int(parts[0])))
        return [int(p) for p in parts]
    if isinstance(devices, int):
        if devices < -1:
            raise ValueError(f"devices={devices}: expected an int >= -1")
        return list(range(devices))
    if isinstance(devices, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) for d in devices):
        return list(devices)
    raise TypeError(f"devices={devices!r}: expected an int, a string or a list of device ids")


__all__ = ["Accelerator"]
