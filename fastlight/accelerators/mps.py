"""MPSAccelerator (`lightning.pytorch.accelerators.MPSAccelerator`): Apple silicon GPUs, one device."""
import os
import platform
from typing import Any, Dict, List, Optional, Union

import torch

from fastlight.utilities.exceptions import MisconfigurationException

from .accelerator import Accelerator, _device_ids


class MPSAccelerator(Accelerator):
    """Training on the Apple GPU (torch's "mps" device)."""

    def setup_device(self, device: torch.device) -> None:
        if device.type != "mps":
            raise MisconfigurationException(f"Device should be MPS, got {device} instead.")

    @staticmethod
    def parse_devices(devices: Union[int, str, List[int]]) -> Optional[List[int]]:
        ids = _device_ids(devices, MPSAccelerator.auto_device_count())
        if ids is not None and (len(ids) > 1 or any(i != 0 for i in ids)):
            raise MisconfigurationException(f"`devices={devices!r}`: MPS has one device (0).")
        return ids

    @staticmethod
    def get_parallel_devices(devices: Union[int, str, List[int]]) -> List[torch.device]:
        ids = MPSAccelerator.parse_devices(devices)
        return [torch.device("mps", 0)] if ids else []

    @staticmethod
    def auto_device_count() -> int:
        return 1 if MPSAccelerator.is_available() else 0

    @staticmethod
    def is_available() -> bool:
        """THE probe for Apple GPUs (Lightning's: DISABLE_MPS=1 turns it off; Apple silicon only)."""
        mps = getattr(torch.backends, "mps", None)
        return bool(os.getenv("DISABLE_MPS", "0") != "1" and mps is not None and mps.is_available()
                    and platform.processor() in ("arm", "arm64"))

    def get_device_stats(self, device: Union[str, torch.device]) -> Dict[str, Any]:
        return {"mps.current_allocated_memory": torch.mps.current_allocated_memory()}

    @classmethod
    def name(cls) -> str:
        return "mps"

    @classmethod
    def register_accelerators(cls, accelerator_registry: Any) -> None:
        accelerator_registry.register("mps", cls, description=cls.__name__)
