"""fastlight.accelerators: Lightning's accelerator classes (`lightning.pytorch.accelerators`)."""
from .accelerator import Accelerator
from .cpu import CPUAccelerator
from .cuda import CUDAAccelerator, find_usable_cuda_devices
from .mps import MPSAccelerator
from .registry import AcceleratorRegistry, _register_builtin
from .xla import XLAAccelerator

_register_builtin(AcceleratorRegistry, [CPUAccelerator, CUDAAccelerator, MPSAccelerator])
AcceleratorRegistry.register("tpu", XLAAccelerator, description="TPUs: not supported by fastlight (creating it raises)")


def _accelerator_for(name: str) -> Accelerator:
    """The Accelerator instance for a resolved device type ("cpu", "cuda", "mps")."""
    return AcceleratorRegistry.get(name)


__all__ = [
    "Accelerator",
    "AcceleratorRegistry",
    "CPUAccelerator",
    "CUDAAccelerator",
    "MPSAccelerator",
    "XLAAccelerator",
    "find_usable_cuda_devices",
]
