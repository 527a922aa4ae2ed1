"""fastlight.ops: THE dispatch point between native kernels and pure-torch references.

Everything above this module calls these functions, never torch.ops.fastlight or fastlight._C directly.
`backend(device)` says which implementation runs for a device type, `backend_reason(device)` why.
"""
from typing import Dict, List, Sequence, Union

import torch

from . import reference
from ._loader import load as _load

__all__ = ["backend", "backend_reason", "grad_stats", "reference"]

_DISPATCH_KEYS = {"cpu": "CPU", "cuda": "CUDA"}
_backend_cache: Dict[str, str] = {}


def _device_type(device: Union[str, torch.device, None]) -> str:
    if device is None:
        return "cpu"
    if isinstance(device, torch.device):
        return device.type
    return torch.device(device).type


def _native_for(device_type: str) -> bool:
    loaded, _ = _load()
    key = _DISPATCH_KEYS.get(device_type)
    if not loaded or key is None:
        return False
    return torch._C._dispatch_has_kernel_for_dispatch_key("fastlight::grad_stats", key)


def backend(device: Union[str, torch.device, None] = "cpu") -> str:
    """'native' if fastlight's kernels run for this device type, else 'torch' (the references)."""
    dt = _device_type(device)
    b = _backend_cache.get(dt)
    if b is None:
        b = "native" if _native_for(dt) else "torch"
        _backend_cache[dt] = b
    return b


def backend_reason(device: Union[str, torch.device, None] = "cpu") -> str:
    dt = _device_type(device)
    loaded, reason = _load()
    if backend(dt) == "native":
        return reason
    if loaded:
        return f"the extension was built without {_DISPATCH_KEYS.get(dt, dt)} kernels"
    return reason


def _reset_for_tests():
    from . import _loader

    _backend_cache.clear()
    _loader._reset_for_tests()


# ---- ops ---------------------------------------------------------------------------------------------


def grad_stats(tensors: Sequence[torch.Tensor]) -> torch.Tensor:
    """One read-only pass: float32 [2] on the tensors' device = (sum of squares, non-finite flag 0/1)."""
    tensors = list(tensors)
    if not tensors:
        return torch.zeros(2, dtype=torch.float32)
    if backend(tensors[0].device) == "native":
        return torch.ops.fastlight.grad_stats(tensors)
    return reference.grad_stats(tensors)


def _register_fakes():
    """Shape-only implementations so torch.compile can trace through the native ops."""
    if not _load()[0] or not hasattr(torch, "library") or not hasattr(torch.library, "register_fake"):
        return

    @torch.library.register_fake("fastlight::grad_stats")
    def _grad_stats_fake(tensors: List[torch.Tensor]) -> torch.Tensor:
        return tensors[0].new_empty((2,), dtype=torch.float32)


_register_fakes()
