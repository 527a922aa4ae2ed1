"""fastlight.ops: THE dispatch point between native kernels and pure-torch references.

Everything above this module calls these functions, never torch.ops.fastlight or fastlight._C directly.
`backend(device)` says which implementation runs for a device type, `backend_reason(device)` why.
"""
from typing import Dict, List, Optional, Sequence, Union

import torch

from . import reference
from ._loader import load as _load

__all__ = ["backend", "backend_reason", "grad_stats", "adam_step_", "sgd_step_", "cpu_optim_isa", "cpu_optim_set_isa",
           "reference"]

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
    _op_cache.clear()
    _fast_module.clear()
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


def _native_op(name: str, device: torch.device) -> bool:
    """The native kernel of op `name` runs for this device (an older build may lack newer ops)."""
    if backend(device) != "native":
        return False
    key = (name, device.type)
    has = _op_cache.get(key)
    if has is None:
        has = torch._C._dispatch_has_kernel_for_dispatch_key(f"fastlight::{name}", _DISPATCH_KEYS[device.type])
        _op_cache[key] = has
    return has


_op_cache: Dict[tuple, bool] = {}
_fast_module = []  # [fastlight._C] once looked up, [None] if it has no eager entry points


def _eager_entry(name: str):
    """fastlight._C.<name>: the eager binding of a list-heavy op (unpacks Python lists without the generic
    per-element IValue conversion of torch.ops); None under torch.compile tracing or in an older build."""
    if not _fast_module:
        # Only the prebuilt module has them; importing fastlight._C after a JIT build (or after the loader
        # refused a _C built for another torch) would load a second, possibly incompatible library.
        from ._loader import prebuilt_module

        _fast_module.append(prebuilt_module())
    mod = _fast_module[0]
    if mod is None or torch.compiler.is_compiling():
        return None
    return getattr(mod, name, None)


def adam_step_(
    params: List[torch.Tensor],
    grads: List[torch.Tensor],
    exp_avgs: List[torch.Tensor],
    exp_avg_sqs: List[torch.Tensor],
    max_exp_avg_sqs: List[torch.Tensor],
    state_steps: List[torch.Tensor],
    lr: torch.Tensor,
    beta1: float,
    beta2: float,
    weight_decay: float,
    eps: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    grad_scale: Optional[torch.Tensor] = None,
    found_inf: Optional[torch.Tensor] = None,
) -> None:
    """Adam (decoupled_weight_decay=False) / AdamW (True) step in place over params of one device.

    Per param i: state_steps[i] += 1, then torch's single-tensor update in float32 (float64 for float64
    params) with the bias corrections in double. lr, grad_scale, found_inf: one-element tensors on the params'
    device (or the CPU). grad_scale multiplies every gradient in registers (grads are not written); a nonzero
    found_inf leaves params, states and steps untouched. max_exp_avg_sqs may be empty unless amsgrad.
    """
    if not params:
        return
    if _native_op("adam_step_", params[0].device):
        fast = _eager_entry("adam_step_")
        if fast is not None:
            fast(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
                 weight_decay, eps, amsgrad, maximize, decoupled_weight_decay, grad_scale, found_inf)
            return
        torch.ops.fastlight.adam_step_(
            params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2,
            weight_decay, eps, amsgrad, maximize, decoupled_weight_decay, grad_scale, found_inf,
        )
        return
    reference.adam_step_(
        params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1, beta2, weight_decay,
        eps, amsgrad, maximize, decoupled_weight_decay, grad_scale, found_inf,
    )


def sgd_step_(
    params: List[torch.Tensor],
    grads: List[torch.Tensor],
    momentum_buffers: List[torch.Tensor],
    lr: torch.Tensor,
    weight_decay: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    maximize: bool,
    is_first_step: bool,
    grad_scale: Optional[torch.Tensor] = None,
    found_inf: Optional[torch.Tensor] = None,
) -> None:
    """torch.optim.SGD step in place over params of one device (momentum_buffers empty when momentum == 0).

    is_first_step: every buffer becomes its (decayed) gradient, as torch does for a buffer it creates.
    grad_scale / found_inf as in adam_step_.
    """
    if not params:
        return
    if _native_op("sgd_step_", params[0].device):
        fast = _eager_entry("sgd_step_")
        if fast is not None:
            fast(params, grads, momentum_buffers, lr, weight_decay, momentum, dampening, nesterov, maximize,
                 is_first_step, grad_scale, found_inf)
            return
        torch.ops.fastlight.sgd_step_(
            params, grads, momentum_buffers, lr, weight_decay, momentum, dampening, nesterov, maximize,
            is_first_step, grad_scale, found_inf,
        )
        return
    reference.sgd_step_(
        params, grads, momentum_buffers, lr, weight_decay, momentum, dampening, nesterov, maximize,
        is_first_step, grad_scale, found_inf,
    )


def cpu_optim_isa() -> str:
    """Which vector ISA the native CPU optimizer loops use here ('avx512', 'avx2', 'baseline'), or 'torch'."""
    if backend("cpu") != "native" or not hasattr(torch.ops.fastlight, "cpu_optim_isa"):
        return "torch"
    return torch.ops.fastlight.cpu_optim_isa()


def cpu_optim_set_isa(cap: str = "") -> str:
    """Caps the CPU optimizer loops' ISA ('' = best available, 'baseline', 'avx2', 'avx512'); returns the one
    now used. For tests and benchmarks; not to be called while a step runs in another thread."""
    if backend("cpu") != "native" or not hasattr(torch.ops.fastlight, "cpu_optim_set_isa"):
        return "torch"
    return torch.ops.fastlight.cpu_optim_set_isa(cap)


def _register_fakes():
    """Shape-only implementations so torch.compile can trace through the native ops."""
    if not _load()[0] or not hasattr(torch, "library") or not hasattr(torch.library, "register_fake"):
        return

    @torch.library.register_fake("fastlight::grad_stats")
    def _grad_stats_fake(tensors: List[torch.Tensor]) -> torch.Tensor:
        return tensors[0].new_empty((2,), dtype=torch.float32)

    # The optimizer steps only mutate their inputs: nothing to allocate.
    if hasattr(torch.ops.fastlight, "adam_step_"):

        @torch.library.register_fake("fastlight::adam_step_")
        def _adam_step_fake(params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, state_steps, lr, beta1,
                            beta2, weight_decay, eps, amsgrad, maximize, decoupled_weight_decay,
                            grad_scale=None, found_inf=None) -> None:
            return None

    if hasattr(torch.ops.fastlight, "sgd_step_"):

        @torch.library.register_fake("fastlight::sgd_step_")
        def _sgd_step_fake(params, grads, momentum_buffers, lr, weight_decay, momentum, dampening, nesterov,
                           maximize, is_first_step, grad_scale=None, found_inf=None) -> None:
            return None


_register_fakes()
