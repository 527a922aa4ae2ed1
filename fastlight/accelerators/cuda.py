"""CUDAAccelerator and find_usable_cuda_devices (`lightning.pytorch.accelerators`)."""
import os
from typing import Any, Dict, List, Optional, Union

import torch

from fastlight.utilities.exceptions import MisconfigurationException

from .accelerator import Accelerator, _device_ids
from fastlight.utilities.rank_zero import module_logger


_log = module_logger(__name__)


def num_cuda_devices() -> int:
    """The number of CUDA devices this process sees: THE probe behind every CUDA decision in fastlight (accelerator
    "auto"/"gpu"/"cuda", device ids, `CUDAAccelerator.is_available`), as in Lightning, so that a test patching
    `fastlight.accelerators.cuda.num_cuda_devices` (`lightning.pytorch.accelerators.cuda.num_cuda_devices` under
    the alias) sees Trainers configured as on a machine with that many GPUs."""
    return torch.cuda.device_count()


def is_cuda_available() -> bool:
    """Whether this process sees a CUDA device (`num_cuda_devices() > 0`)."""
    return num_cuda_devices() > 0


def _suggest_matmul_precision(device: torch.device) -> None:
    """On GPUs with Tensor Cores (compute capability 8+), suggest a faster float32 matmul precision when the user left
    torch's default ("highest"), as Lightning does."""
    if not torch.cuda.is_available() or torch.cuda.get_device_capability(device)[0] < 8:
        return
    if torch.get_float32_matmul_precision() == "highest":
        from fastlight.utilities.rank_zero import rank_zero_info

        rank_zero_info(
            f"You are using a CUDA device ({torch.cuda.get_device_name(device)!r}) that has Tensor Cores. To properly"
            " utilize them, you should set `torch.set_float32_matmul_precision('medium' | 'high')` which will"
            " trade-off precision for performance. For more details, read https://pytorch.org/docs/stable/generated/"
            "torch.set_float32_matmul_precision.html#torch.set_float32_matmul_precision"
        )


class CUDAAccelerator(Accelerator):
    """Training on NVIDIA GPUs (one process per device under DDP)."""

    def setup_device(self, device: torch.device) -> None:
        if device.type != "cuda":
            raise MisconfigurationException(f"Device should be GPU, got {device} instead")
        _suggest_matmul_precision(device)
        torch.cuda.set_device(device)

    def setup(self, trainer: Any) -> None:
        """Lightning's per-process line saying which GPUs this rank sees, and its Tensor Core hint."""
        visible = os.environ.get("CUDA_VISIBLE_DEVICES", ",".join(str(i) for i in range(self.auto_device_count())))
        _log.info(f"LOCAL_RANK: {trainer.local_rank} - CUDA_VISIBLE_DEVICES: [{visible}]")
        _suggest_matmul_precision(trainer.strategy.root_device)

    def teardown(self) -> None:
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            torch.cuda.empty_cache()

    @staticmethod
    def parse_devices(devices: Union[int, str, List[int]]) -> Optional[List[int]]:
        available = CUDAAccelerator.auto_device_count()
        ids = _device_ids(devices, available)
        if ids is None:
            return None
        bad = [i for i in ids if i < 0 or i >= available]
        if bad or (not ids and devices not in (None, 0)):
            raise MisconfigurationException(
                f"You requested gpu: {ids}\n But your machine only has: {list(range(available))}"
            )
        return ids

    @staticmethod
    def get_parallel_devices(devices: List[int]) -> List[torch.device]:
        return [torch.device("cuda", i) for i in devices]

    @staticmethod
    def auto_device_count() -> int:
        return num_cuda_devices()

    @staticmethod
    def is_available() -> bool:
        return CUDAAccelerator.auto_device_count() > 0

    def get_device_stats(self, device: Union[str, torch.device]) -> Dict[str, Any]:
        """torch.cuda.memory_stats of the device."""
        return torch.cuda.memory_stats(device)

    @classmethod
    def name(cls) -> str:
        return "cuda"

    @classmethod
    def register_accelerators(cls, accelerator_registry: Any) -> None:
        accelerator_registry.register("cuda", cls, description=cls.__name__)


def find_usable_cuda_devices(num_devices: int = -1) -> List[int]:
    """The ids of `num_devices` CUDA devices this process can use (-1: all usable ones): each is tried with a small
    allocation, so devices in exclusive mode that another process holds are skipped. Use it as
    `Trainer(accelerator="cuda", devices=find_usable_cuda_devices(2))`."""
    if num_devices == 0:
        return []
    visible = num_cuda_devices()
    if visible == 0:
        raise ValueError(
            f"You requested to find {num_devices} devices but there are no visible CUDA devices on this machine."
        )
    if num_devices > visible:
        raise ValueError(f"You requested to find {num_devices} devices but this machine only has {visible} GPUs.")
    usable: List[int] = []
    unusable: List[int] = []
    for idx in range(visible):
        try:
            torch.empty(1, device=torch.device("cuda", idx))
        except RuntimeError:
            unusable.append(idx)
            continue
        usable.append(idx)
        if len(usable) == num_devices:
            break
    if num_devices != -1 and len(usable) != num_devices:
        raise RuntimeError(
            f"You requested to find {num_devices} devices but only {len(usable)} are currently available. The devices"
            f" {unusable} are occupied by other processes and can't be used at the moment"
            f" (CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES')!r})."
        )
    return usable


_NVIDIA_SMI_FIELDS = {  # nvidia-smi --query-gpu field -> unit
    "utilization.gpu": "%", "memory.used": "MB", "memory.free": "MB", "utilization.memory": "%",
    "fan.speed": "%", "temperature.gpu": "°C", "temperature.memory": "°C",
}


def get_nvidia_gpu_stats(device: Union[str, torch.device]) -> Dict[str, float]:
    """Utilization, memory and temperatures of a GPU as `nvidia-smi` reports them ("<field> (<unit>)" keys)."""
    import shutil
    import subprocess

    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        raise FileNotFoundError("nvidia-smi: command not found (it reports the GPU stats)")
    index = torch.device(device).index or 0
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    gpu_id = visible.split(",")[index].strip() if visible else str(index)
    out = subprocess.run(
        [nvidia_smi, f"--query-gpu={','.join(_NVIDIA_SMI_FIELDS)}", "--format=csv,nounits,noheader", f"--id={gpu_id}"],
        capture_output=True, text=True, check=True,
    ).stdout
    values = [v.strip() for v in out.strip().split(",")]

    def number(text: str) -> float:
        try:
            return float(text)
        except ValueError:
            return 0.0  # "[N/A]" on boards without that sensor

    return {f"{field} ({unit})": number(v) for (field, unit), v in zip(_NVIDIA_SMI_FIELDS.items(), values)}
