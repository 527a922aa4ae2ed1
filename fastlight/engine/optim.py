"""Fused optimizers: torch.optim.Adam / AdamW / SGD with one kernel call per (param group, device).

FusedAdam, FusedAdamW and FusedSGD subclass their torch.optim counterparts: same constructor arguments and
ValueError messages, same param_groups keys, same state names (step, exp_avg, exp_avg_sq, max_exp_avg_sq,
momentum_buffer), so ``isinstance(opt, torch.optim.AdamW)`` holds, LR schedulers work unchanged and a
state_dict loads in both directions. Only ``step`` differs: it calls ``fastlight.ops.adam_step_`` /
``sgd_step_`` (native kernels: one OpenMP region on the CPU, one launch per dtype on CUDA) instead of
torch's per-tensor, foreach or fused paths.

Per-step AMP inputs (for the loss-scaling code): ``step(closure=None, *, grad_scale=None, found_inf=None)``
where ``grad_scale`` is a one-element float32 MULTIPLIER applied to every gradient in registers (inv_scale x
clip coefficient; the grads themselves are not written) and a nonzero ``found_inf`` skips the step: params,
states and step counters stay untouched. Both stay on the device (no host sync). torch.amp.GradScaler also
works: these optimizers set ``_step_supports_amp_scaling``, so GradScaler hands them its scale (a divisor,
turned into its reciprocal on the device, exact for powers of two) and found_inf through attributes.
Unlike torch's fused optimizers, grads are left scaled after such a step.

``fuse_optimizer(opt)`` turns a torch.optim.Adam/AdamW/SGD into its fused twin (same groups, extra keys,
hyperparameters, state and hooks); ``rebind_lr_scheduler`` points a scheduler at the new optimizer.
"""
from typing import Any, Callable, Dict, List, Optional, Tuple

import torch
import torch.optim.optimizer as _torch_optimizer
from torch import Tensor

from .. import ops

__all__ = ["FusedAdam", "FusedAdamW", "FusedSGD", "fuse_optimizer", "fuse_in_place", "rebind_lr_scheduler", "FUSABLE"]

_FLOAT_DTYPES = (torch.float32, torch.float64, torch.float16, torch.bfloat16)
_KERNEL_DEVICES = ("cpu", "cuda")


def _name_of(opt) -> str:
    return type(opt).__name__


def _check_param(opt, gi: int, pi: int, p: Tensor, grad: Tensor) -> None:
    """A clear error naming the group and index for what the kernels cannot take."""
    where = f"{_name_of(opt)}: param_groups[{gi}]['params'][{pi}]"
    if torch.is_complex(p):
        raise RuntimeError(f"{where} is complex ({p.dtype}); fused optimizers support real float params only")
    if p.dtype not in _FLOAT_DTYPES:
        raise RuntimeError(f"{where} has dtype {p.dtype}; fused optimizers support float32/float64/float16/bfloat16")
    if p.device.type not in _KERNEL_DEVICES:
        raise RuntimeError(f"{where} is on {p.device}; fused optimizers run on cpu and cuda")
    if grad.is_sparse:
        raise RuntimeError(f"{where} has a sparse gradient; fused optimizers need dense gradients")
    if grad.device != p.device:
        raise RuntimeError(f"{where} has its gradient on {grad.device} but lives on {p.device}")
    if grad.dtype != p.dtype:
        raise RuntimeError(f"{where} has dtype {p.dtype} but its gradient has dtype {grad.dtype}")
    if grad.shape != p.shape:
        raise RuntimeError(f"{where} has shape {tuple(p.shape)} but its gradient {tuple(grad.shape)}")


def _same_layout(p: Tensor, t: Tensor) -> bool:
    # Equal shapes and strides: one linear walk visits matching elements (the kernels check that the
    # param itself is non-overlapping and dense).
    return t.numel() == 0 or (t.shape == p.shape and t.stride() == p.stride())


def _layout_like(p: Tensor, t: Tensor) -> Tensor:
    """A copy of t with p's memory layout (the kernels walk p, grad and states in the same linear order)."""
    out = torch.empty_like(p, dtype=t.dtype, device=t.device)
    out.copy_(t)
    return out


class _LrCache:
    """A float lr as a one-element CPU float64 tensor, rebuilt only when the value changes (schedulers)."""

    __slots__ = ("value", "tensor")

    def __init__(self):
        self.value = None
        self.tensor = None

    def get(self, lr) -> Tensor:
        if isinstance(lr, Tensor):
            return lr
        if lr != self.value or self.tensor is None:
            self.value = lr
            self.tensor = torch.tensor(float(lr), dtype=torch.float64)
        return self.tensor


class _FusedMixin:
    """Shared step plumbing: AMP inputs, per-(group, device) lists, a cache of those lists."""

    _fused_kind = ""  # "adam" or "sgd"

    def _fused_setup(self) -> None:
        for group in self.param_groups:
            if group.get("differentiable", False):
                raise ValueError(f"{_name_of(self)} does not support differentiable=True")
        self._step_supports_amp_scaling = True
        self._fl_lr: Dict[int, _LrCache] = {}
        self._fl_cache: Dict[int, Any] = {}

    # torch.optim.Optimizer rebuilds its dicts on load_state_dict/__setstate__: forget our cached lists.
    def __setstate__(self, state):
        super().__setstate__(state)
        self.__dict__.setdefault("_step_supports_amp_scaling", True)
        self._fl_lr = {}
        self._fl_cache = {}

    def add_param_group(self, param_group: Dict[str, Any]) -> None:
        super().add_param_group(param_group)
        if hasattr(self, "_fl_cache"):
            self._fl_cache.clear()

    def _amp_inputs(self, grad_scale: Optional[Tensor], found_inf: Optional[Tensor]):
        # torch.amp.GradScaler protocol (_step_supports_amp_scaling): attributes set around step(), where
        # grad_scale is the loss scale (a divisor). Our kernels take a multiplier.
        if grad_scale is None:
            scaler_scale = getattr(self, "grad_scale", None)
            if scaler_scale is not None:
                grad_scale = torch.reciprocal(scaler_scale.to(torch.float32))
        if found_inf is None:
            found_inf = getattr(self, "found_inf", None)
        return grad_scale, found_inf

    def _lr_tensor(self, gi: int, lr) -> Tensor:
        cache = self._fl_lr.get(gi)
        if cache is None:
            cache = self._fl_lr[gi] = _LrCache()
        return cache.get(lr)

    @staticmethod
    def _to_device(t: Optional[Tensor], device: torch.device) -> Optional[Tensor]:
        # CPU scalars are read by the host glue directly (no copy, no sync); device tensors must match.
        if t is None or t.device == device or t.device.type == "cpu":
            return t
        return t.to(device, non_blocking=True)

    def _run_checked(self, gi: int, group, grads, dparams: List[Tensor], dgrads: List[Tensor], run) -> None:
        """Calls run(dgrads). The kernels check every tensor before writing anything, so when they refuse
        the input, nothing changed: name the culprit (group, index) or, for a gradient whose memory layout
        differs from its param's, retry once with a copy in the param's layout."""
        try:
            run(dgrads)
        except RuntimeError:
            self._fl_cache.pop(gi, None)
            for pi, (p, g) in enumerate(zip(group["params"], grads)):
                if g is not None:
                    _check_param(self, gi, pi, p, g)
            fixed = [g if _same_layout(p, g) else _layout_like(p, g) for p, g in zip(dparams, dgrads)]
            if all(f is g for f, g in zip(fixed, dgrads)):
                raise
            run(fixed)

    def zero_grad(self, set_to_none: bool = True) -> None:
        """torch's zero_grad without its profiler range when no profiler records (a record_function costs about
        as much as setting a few grads to None); the same grads afterwards."""
        if not set_to_none or torch._C._autograd._profiler_enabled():
            return super().zero_grad(set_to_none)
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is not None:
                    p.grad = None

    def step_unobserved(self) -> bool:
        """Run `step()` without torch's step wrapper (a profiler range and the hook loops) when nothing observes
        it: no step pre/post hooks (the optimizer's or global), no profiler recording, and `step` not replaced on
        the instance (an LR scheduler's tracking wrapper excepted: its one effect, `_opt_called`, is set here).
        False when it did nothing: the caller calls `step()`."""
        if (self._optimizer_step_pre_hooks or self._optimizer_step_post_hooks
                or _torch_optimizer._global_optimizer_pre_hooks or _torch_optimizer._global_optimizer_post_hooks
                or torch._C._autograd._profiler_enabled()):
            return False
        patched = self.__dict__.get("step")
        if patched is not None:
            if not getattr(patched, "_wrapped_by_lr_sched", False):
                return False
            self._opt_called = True
        raw = getattr(type(self).step, "__wrapped__", None)
        if raw is not _FusedMixin.step:  # a subclass with its own step: the ordinary call
            return False
        raw(self)
        return True

    @torch.no_grad()
    def step(self, closure: Optional[Callable[[], Any]] = None, *, grad_scale: Optional[Tensor] = None,
             found_inf: Optional[Tensor] = None):
        """One optimizer step over all param groups.

        grad_scale: one-element float tensor multiplied into every gradient (inv_scale x clip coefficient).
        found_inf: one-element float tensor; nonzero skips the step (params, states, step counters untouched).
        """
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        grad_scale, found_inf = self._amp_inputs(grad_scale, found_inf)
        for gi, group in enumerate(self.param_groups):
            self._step_group(gi, group, grad_scale, found_inf)
        return loss


# ---- Adam / AdamW ------------------------------------------------------------------------------------------


class _AdamStepMixin(_FusedMixin):
    _fused_kind = "adam"

    def _init_adam_state(self, p: Tensor, amsgrad: bool) -> Dict[str, Tensor]:
        state = self.state[p]
        if len(state) == 0:
            # step on the param's device as torch's fused/capturable Adam keeps it: read there, no sync.
            state["step"] = torch.zeros((), dtype=torch.float32, device=p.device)
            state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            if amsgrad:
                state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
            return state
        step = state["step"]
        if not torch.is_tensor(step):
            state["step"] = torch.tensor(float(step), dtype=torch.float32, device=p.device)
        elif step.device != p.device or step.dtype not in (torch.float32, torch.float64):
            # Loaded from torch's non-fused AdamW (step on the CPU): move it once.
            state["step"] = step.to(device=p.device, dtype=torch.float32)
        if amsgrad and "max_exp_avg_sq" not in state:
            state["max_exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for key in ("exp_avg", "exp_avg_sq", "max_exp_avg_sq"):
            t = state.get(key)
            if t is not None and (t.dtype != p.dtype or t.device != p.device or not _same_layout(p, t)):
                state[key] = _layout_like(p, t.to(device=p.device, dtype=p.dtype))
        return state

    def _build_adam_lists(self, gi: int, group, grads: List[Optional[Tensor]]):
        """Lists per device for the params that have a gradient; validates and initializes state."""
        amsgrad = group["amsgrad"]
        per_device: Dict[torch.device, Tuple[list, list, list, list, list, list]] = {}
        for pi, (p, g) in enumerate(zip(group["params"], grads)):
            if g is None:
                continue
            _check_param(self, gi, pi, p, g)
            state = self._init_adam_state(p, amsgrad)
            lists = per_device.get(p.device)
            if lists is None:
                lists = per_device[p.device] = ([], [], [], [], [], [])
            lists[0].append(p)
            lists[1].append(pi)
            lists[2].append(state["exp_avg"])
            lists[3].append(state["exp_avg_sq"])
            lists[4].append(state["max_exp_avg_sq"] if amsgrad else None)
            lists[5].append(state["step"])
        return [
            (dev, params, idx, m, v, [x for x in vmax if x is not None], steps)
            for dev, (params, idx, m, v, vmax, steps) in per_device.items()
        ]

    def _step_group(self, gi: int, group, grad_scale, found_inf) -> None:
        params = group["params"]
        grads = [p.grad for p in params]
        amsgrad = group["amsgrad"]
        # The lists are rebuilt only when the set of params with a gradient or the state changed.
        key = (id(params), len(params), id(self.state), amsgrad)
        cached = self._fl_cache.get(gi)
        all_have_grads = not any(g is None for g in grads)  # not `None in grads`: that calls Tensor.__eq__
        if cached is not None and cached[0] == key and all_have_grads:
            lists = cached[1]
        else:
            lists = self._build_adam_lists(gi, group, grads)
            if all_have_grads:
                self._fl_cache[gi] = (key, lists)
            else:
                self._fl_cache.pop(gi, None)
        beta1, beta2 = group["betas"]
        hyper = (float(beta1), float(beta2), float(group["weight_decay"]), float(group["eps"]), amsgrad,
                 group["maximize"], group.get("decoupled_weight_decay", False))
        lr = self._lr_tensor(gi, group["lr"])
        for dev, dparams, idx, m, v, vmax, steps in lists:
            dgrads = grads if len(idx) == len(grads) else [grads[i] for i in idx]

            def run(dgrads, dparams=dparams, m=m, v=v, vmax=vmax, steps=steps, dev=dev):
                ops.adam_step_(dparams, dgrads, m, v, vmax, steps, self._to_device(lr, dev), *hyper,
                               self._to_device(grad_scale, dev), self._to_device(found_inf, dev))

            self._run_checked(gi, group, grads, dparams, dgrads, run)


class FusedAdam(_AdamStepMixin, torch.optim.Adam):
    """torch.optim.Adam with a fused step (see the module docstring)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0, amsgrad=False, *,
                 foreach=None, maximize=False, capturable=False, differentiable=False, fused=None,
                 decoupled_weight_decay=False):
        torch.optim.Adam.__init__(self, params, lr, betas, eps, weight_decay, amsgrad, foreach=foreach,
                                  maximize=maximize, capturable=capturable, differentiable=differentiable,
                                  fused=fused, decoupled_weight_decay=decoupled_weight_decay)
        self._fused_setup()


class FusedAdamW(_AdamStepMixin, torch.optim.AdamW):
    """torch.optim.AdamW with a fused step (see the module docstring)."""

    def __init__(self, params, lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2, amsgrad=False, *,
                 maximize=False, foreach=None, capturable=False, differentiable=False, fused=None):
        torch.optim.AdamW.__init__(self, params, lr, betas, eps, weight_decay, amsgrad, maximize=maximize,
                                   foreach=foreach, capturable=capturable, differentiable=differentiable,
                                   fused=fused)
        self._fused_setup()


# ---- SGD ---------------------------------------------------------------------------------------------------


class FusedSGD(_FusedMixin, torch.optim.SGD):
    """torch.optim.SGD with a fused step (see the module docstring).

    A momentum buffer is created on the first step a param has a gradient, as torch does. If that first
    step is skipped by found_inf, the buffer starts at zero instead of being a copy of the next gradient:
    identical to torch unless dampening != 0.
    """

    _fused_kind = "sgd"

    def __init__(self, params, lr=1e-3, momentum=0, dampening=0, weight_decay=0, nesterov=False, *,
                 maximize=False, foreach=None, differentiable=False, fused=None):
        torch.optim.SGD.__init__(self, params, lr, momentum, dampening, weight_decay, nesterov,
                                 maximize=maximize, foreach=foreach, differentiable=differentiable, fused=fused)
        self._fused_setup()

    def _build_sgd_lists(self, gi: int, group, grads):
        """Per device: (existing-buffer lists, first-step lists), each (params, idx, buffers)."""
        has_momentum = group["momentum"] != 0
        per_device: Dict[torch.device, Tuple[tuple, tuple]] = {}
        for pi, (p, g) in enumerate(zip(group["params"], grads)):
            if g is None:
                continue
            _check_param(self, gi, pi, p, g)
            first = False
            buf = None
            if has_momentum:
                state = self.state[p]
                buf = state.get("momentum_buffer")
                if buf is None:
                    # torch clones the first gradient; the kernel writes it (zeros in case the step is skipped)
                    buf = state["momentum_buffer"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    first = True
                elif buf.dtype != p.dtype or buf.device != p.device or not _same_layout(p, buf):
                    buf = state["momentum_buffer"] = _layout_like(p, buf.to(device=p.device, dtype=p.dtype))
            entry = per_device.get(p.device)
            if entry is None:
                entry = per_device[p.device] = (([], [], []), ([], [], []))
            target = entry[1] if first else entry[0]
            target[0].append(p)
            target[1].append(pi)
            if has_momentum:
                target[2].append(buf)
        return per_device

    def _step_group(self, gi: int, group, grad_scale, found_inf) -> None:
        params = group["params"]
        grads = [p.grad for p in params]
        has_momentum = group["momentum"] != 0
        key = (id(params), len(params), id(self.state), has_momentum)
        cached = self._fl_cache.get(gi)
        all_have_grads = not any(g is None for g in grads)  # not `None in grads`: that calls Tensor.__eq__
        if cached is not None and cached[0] == key and all_have_grads:
            per_device = cached[1]
        else:
            per_device = self._build_sgd_lists(gi, group, grads)
            # Cacheable once every buffer exists (no first-step list left).
            if all_have_grads and all(len(first[0]) == 0 for _, first in per_device.values()):
                self._fl_cache[gi] = (key, per_device)
            else:
                self._fl_cache.pop(gi, None)
        lr = self._lr_tensor(gi, group["lr"])
        wd = float(group["weight_decay"])
        for dev, (existing, first) in per_device.items():
            for (dparams, idx, bufs), is_first in ((existing, False), (first, True)):
                if not dparams:
                    continue
                dgrads = grads if len(idx) == len(grads) else [grads[i] for i in idx]

                def run(dgrads, dparams=dparams, bufs=bufs, is_first=is_first, dev=dev):
                    ops.sgd_step_(dparams, dgrads, bufs, self._to_device(lr, dev), wd, float(group["momentum"]),
                                  float(group["dampening"]), group["nesterov"], group["maximize"], is_first,
                                  self._to_device(grad_scale, dev), self._to_device(found_inf, dev))

                self._run_checked(gi, group, grads, dparams, dgrads, run)


# ---- swapping a torch optimizer for its fused twin -----------------------------------------------------------

# torch class -> (fused class, constructor keyword names taken from optimizer.defaults)
FUSABLE = {
    torch.optim.AdamW: (FusedAdamW, ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
                                     "capturable", "differentiable", "fused")),
    torch.optim.Adam: (FusedAdam, ("lr", "betas", "eps", "weight_decay", "amsgrad", "maximize", "foreach",
                                   "capturable", "differentiable", "fused", "decoupled_weight_decay")),
    torch.optim.SGD: (FusedSGD, ("lr", "momentum", "dampening", "weight_decay", "nesterov", "maximize",
                                 "foreach", "differentiable", "fused")),
}

_HOOK_DICTS = (
    "_optimizer_step_pre_hooks",
    "_optimizer_step_post_hooks",
    "_optimizer_state_dict_pre_hooks",
    "_optimizer_state_dict_post_hooks",
    "_optimizer_load_state_dict_pre_hooks",
    "_optimizer_load_state_dict_post_hooks",
)


def _unsupported_reason(optimizer) -> Optional[str]:
    for gi, group in enumerate(optimizer.param_groups):
        if group.get("differentiable", False):
            return f"param_groups[{gi}] uses differentiable=True"
        lr = group.get("lr")
        if isinstance(lr, Tensor) and lr.requires_grad:
            return f"param_groups[{gi}] has an lr tensor that requires grad"
        for name in ("betas", "weight_decay", "momentum", "dampening", "eps"):
            v = group.get(name)
            vals = v if isinstance(v, (tuple, list)) else (v,)
            if any(isinstance(x, Tensor) for x in vals):
                return f"param_groups[{gi}] has {name} as a tensor"
        for pi, p in enumerate(group["params"]):
            where = f"param_groups[{gi}]['params'][{pi}]"
            if torch.is_complex(p):
                return f"{where} is complex"
            if p.dtype not in _FLOAT_DTYPES:
                return f"{where} has dtype {p.dtype}"
            if p.device.type not in _KERNEL_DEVICES:
                return f"{where} is on {p.device}"
            if ops.backend(p.device) != "native":
                return f"no native kernels for {p.device.type}: {ops.backend_reason(p.device)}"
            if p.grad is not None and p.grad.is_sparse:
                return f"{where} has a sparse gradient"
    return None


def _why_not_fusable(optimizer) -> Optional[str]:
    """Why a (not yet fused) optimizer cannot step with the fused kernels; None when it can."""
    cls = type(optimizer)
    if cls not in FUSABLE:
        if isinstance(optimizer, tuple(FUSABLE)):
            return f"{cls.__name__} subclasses a torch optimizer and may override step()"
        return f"{cls.__name__} has no fused version (supported: Adam, AdamW, SGD)"
    for name in ("step", "zero_grad"):
        if not getattr(getattr(cls, name), "__module__", "").startswith("torch."):
            # torch's method was replaced on the class (a mock, a user's patch): that one is what the user wants run
            return f"{cls.__name__}.{name} is not torch's own (patched)"
    reason = _unsupported_reason(optimizer)
    return None if reason is None else f"{cls.__name__} left unfused: {reason}"


def fuse_optimizer(optimizer) -> Tuple[Optional[torch.optim.Optimizer], str]:
    """A fused equivalent of a torch.optim.Adam / AdamW / SGD, or (None, why not).

    The new optimizer takes over the param groups (every key, extra ones included, the same lr objects),
    defaults, state tensors (shared, not copied: the old optimizer must not be stepped afterwards) and hooks.
    An already fused optimizer is returned as is. Subclasses of the torch classes are left alone: they may
    override step().
    """
    if isinstance(optimizer, _FusedMixin):
        return optimizer, f"{_name_of(optimizer)} is already fused"
    why_not = _why_not_fusable(optimizer)
    if why_not is not None:
        return None, why_not
    fused_cls, arg_names = FUSABLE[type(optimizer)]
    defaults = optimizer.defaults
    kwargs = {k: defaults[k] for k in arg_names if k in defaults}
    groups = []
    for group in optimizer.param_groups:
        g = dict(group)
        g["params"] = list(group["params"])
        groups.append(g)
    try:
        new = fused_cls(groups, **kwargs)
    except (ValueError, RuntimeError) as e:
        return None, f"{cls.__name__} left unfused: {e}"
    # Every key of every group, as the user's groups had them (add_param_group only fills in missing ones).
    for new_group, old_group in zip(new.param_groups, optimizer.param_groups):
        for k, v in old_group.items():
            if k != "params":
                new_group[k] = v
    new.defaults = dict(defaults)
    for p, s in optimizer.state.items():
        new.state[p] = s
    for name in _HOOK_DICTS:
        hooks = getattr(optimizer, name, None)
        if hooks:
            getattr(new, name).update(hooks)
    if getattr(optimizer, "_opt_called", False):
        new._opt_called = True
    return new, f"{type(optimizer).__name__} replaced by {fused_cls.__name__}"


def _iter_schedulers(scheduler):
    yield scheduler
    for inner in getattr(scheduler, "_schedulers", ()) or ():
        yield from _iter_schedulers(inner)


def rebind_lr_scheduler(scheduler, old_optimizer, new_optimizer) -> None:
    """Point a torch LR scheduler (SequentialLR/ChainedScheduler: and every inner one) at new_optimizer.

    Keeps the scheduler's own state (last_epoch, base_lrs, ...), which is valid because fuse_optimizer kept
    the param groups. Re-installs torch's "optimizer.step() was called" tracking on the new optimizer.
    """
    for s in _iter_schedulers(scheduler):
        if getattr(s, "optimizer", None) is old_optimizer:
            s.optimizer = new_optimizer
    step = new_optimizer.step
    if not hasattr(step, "_wrapped_by_lr_sched"):
        import functools
        import weakref

        opt_ref = weakref.ref(new_optimizer)
        func = step.__func__

        @functools.wraps(func)
        def wrapper(*args, **kwargs):
            opt = opt_ref()
            opt._opt_called = True
            return func.__get__(opt, opt.__class__)(*args, **kwargs)

        wrapper._wrapped_by_lr_sched = True
        new_optimizer.step = wrapper


# ---- fusing the user's optimizer object in place ------------------------------------------------------------------

_REPORTED: Dict[type, type] = {}


def _reduce_as_reported(self, protocol):
    """Pickle (and copy) as the torch class the user created: the bytes name torch only, and loading them gives the
    same object the user would have had without fastlight."""
    import copyreg

    return copyreg._reconstructor, (self._fl_reported_class, object, None), self.__getstate__()


def _state_dict_as_reported(self):
    """torch's state_dict, with Adam's `step` counters where the user's torch optimizer keeps them: on the CPU unless
    it was made capturable or fused (the fused kernels read them on the parameters' device)."""
    state_dict = self._fl_fused_class.state_dict(self)
    if self._fused_kind != "adam" or self.defaults.get("capturable") or self.defaults.get("fused"):
        return state_dict
    state = {}
    for key, param_state in state_dict["state"].items():
        step = param_state.get("step")
        if isinstance(step, Tensor) and step.device.type != "cpu":
            param_state = {**param_state, "step": step.cpu()}  # a copy: the optimizer keeps its own
        state[key] = param_state
    return {**state_dict, "state": state}


class _ReportedMeta(type):
    """Prints a reported class as the torch class it stands for."""

    def __repr__(cls) -> str:
        torch_cls = cls.__dict__["_fl_reported_class"]
        return f"<class '{torch_cls.__module__}.{torch_cls.__qualname__}'>"


def _reported_class(torch_cls: type) -> type:
    """The fused twin of `torch_cls` under torch_cls's own name: what a user sees of the optimizer (repr,
    `__class__.__name__` as LearningRateMonitor's keys use it, pickles) is the class they chose."""
    cls = _REPORTED.get(torch_cls)
    if cls is None:
        fused_cls = FUSABLE[torch_cls][0]
        namespace = {
            # name and printed class: torch's (repr, LearningRateMonitor keys, str(type(opt))); import path: a
            # private one of fastlight's, so that class lookups by name among torch.optim.Optimizer's subclasses
            # (jsonargparse's `--optimizer SGD` in LightningCLI) find only torch's class
            "__module__": __name__,
            "__qualname__": f"_reported.{torch_cls.__qualname__}",
            "__doc__": torch_cls.__doc__,
            "_fl_reported_class": torch_cls,
            "_fl_fused_class": fused_cls,
            "__reduce_ex__": _reduce_as_reported,
            "state_dict": _state_dict_as_reported,
        }
        cls = _REPORTED[torch_cls] = _ReportedMeta(torch_cls.__name__, (fused_cls,), namespace)
    return cls


def _retarget_scheduler_step_wrapper(optimizer) -> None:
    """torch's LR schedulers wrap `optimizer.step` on the instance with the class's step captured at that time; the
    wrapper is replaced by one that looks the step up when called (so it runs the fused step)."""
    import functools
    import weakref

    wrapped = optimizer.__dict__.get("step")
    if wrapped is None or not getattr(wrapped, "_wrapped_by_lr_sched", False):
        return
    opt_ref = weakref.ref(optimizer)

    @functools.wraps(type(optimizer).step)
    def wrapper(*args, **kwargs):
        opt = opt_ref()
        opt._opt_called = True  # what torch's wrapper records: the scheduler's "step() before optimizer.step()" check
        return type(opt).step(opt, *args, **kwargs)

    wrapper._wrapped_by_lr_sched = True
    optimizer.step = wrapper


def fuse_in_place(optimizer) -> Tuple[bool, str]:
    """Make the user's torch.optim.Adam / AdamW / SGD object step with the fused kernels: (done, why (not)).

    The object stays the same (its param groups, state, hooks, the schedulers and any reference the user kept), and
    so does everything the user sees of it: its class reports the torch class's name, qualname and module (repr,
    LearningRateMonitor keys), `state_dict()` is torch's, pickling and copying give the torch class. Only `step`
    runs fastlight's kernels. The same rules as `fuse_optimizer` decide what can be fused."""
    if isinstance(optimizer, _FusedMixin):
        return True, f"{_name_of(optimizer)} is already fused"
    why_not = _why_not_fusable(optimizer)
    if why_not is not None:
        return False, why_not
    cls = type(optimizer)
    optimizer.__class__ = _reported_class(cls)
    optimizer._fused_setup()
    optimizer._patch_step_function()  # torch's step wrapper (step pre/post hooks, profiling) for the class
    _retarget_scheduler_step_wrapper(optimizer)
    return True, f"{cls.__name__} steps with fastlight's fused kernels"
