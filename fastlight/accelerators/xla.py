"""XLAAccelerator (`lightning.pytorch.accelerators.XLAAccelerator`): TPUs, which fastlight does not support."""
from typing import Any, Dict, List

import torch

from .accelerator import Accelerator

_NOT_SUPPORTED = "fastlight does not support TPUs/XLA (XLAAccelerator, accelerator='tpu'); use 'cuda' or 'cpu'."


class XLAAccelerator(Accelerator):
    """Stands for Lightning's TPU accelerator so imports work; creating one says that fastlight has no XLA support."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError(_NOT_SUPPORTED)

    @staticmethod
    def parse_devices(devices: Any) -> Any:
        raise NotImplementedError(_NOT_SUPPORTED)

    @staticmethod
    def get_parallel_devices(devices: Any) -> List[torch.device]:
        raise NotImplementedError(_NOT_SUPPORTED)

    @staticmethod
    def auto_device_count() -> int:
        return 0

    @staticmethod
    def is_available() -> bool:
        return False

    def get_device_stats(self, device: Any) -> Dict[str, Any]:
        raise NotImplementedError(_NOT_SUPPORTED)

    @classmethod
    def name(cls) -> str:
        return "tpu"
