"""CPUAccelerator (`lightning.pytorch.accelerators.CPUAccelerator`)."""
from typing import Any, Dict, List, Union

import torch

from fastlight.utilities.exceptions import MisconfigurationException

from .accelerator import Accelerator


class CPUAccelerator(Accelerator):
    """Training on the CPU; `devices=n` means n processes."""

    def setup_device(self, device: torch.device) -> None:
        if device.type != "cpu":
            raise MisconfigurationException(f"Device should be CPU, got {device} instead.")

    @staticmethod
    def parse_devices(devices: Union[int, str]) -> int:
        if isinstance(devices, str) and devices.strip().lstrip("-").isdigit():
            devices = int(devices)
        if isinstance(devices, bool) or not isinstance(devices, int) or devices <= 0:
            raise TypeError(f"`devices` selected with `CPUAccelerator` should be an int > 0, got {devices!r}.")
        return devices

    @staticmethod
    def get_parallel_devices(devices: Union[int, str]) -> List[torch.device]:
        return [torch.device("cpu")] * CPUAccelerator.parse_devices(devices)

    @staticmethod
    def auto_device_count() -> int:
        return 1

    @staticmethod
    def is_available() -> bool:
        return True

    def get_device_stats(self, device: Union[str, torch.device]) -> Dict[str, Any]:
        return get_cpu_stats()

    @classmethod
    def name(cls) -> str:
        return "cpu"

    @classmethod
    def register_accelerators(cls, accelerator_registry: Any) -> None:
        accelerator_registry.register("cpu", cls, description=cls.__name__)


def get_cpu_stats() -> Dict[str, float]:
    """CPU and memory use of the machine in percent (needs psutil, as in Lightning)."""
    try:
        import psutil
    except ImportError as e:
        raise ModuleNotFoundError("CPU device stats need `psutil`: pip install psutil") from e
    return {
        "cpu_vm_percent": psutil.virtual_memory().percent,
        "cpu_percent": psutil.cpu_percent(),
        "cpu_swap_percent": psutil.swap_memory().percent,
    }
