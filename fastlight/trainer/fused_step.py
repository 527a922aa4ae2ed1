"""The optimizer side of a step with the fused engine (Trainer(fused=True)): see docs/engine_integration.md.

One object per fit, owned by the precision plugin (`precision._engine`). For the optimizers it manages, the
step after backward is:

    [unscale_ only if a hook that reads grads is overridden and the loss is scaled]
    on_before_optimizer_step, configure_gradient_clipping -> clip_gradients (recorded here, nothing clipped yet;
        in place instead when configure_gradient_clipping is overridden: user code may read the grads after it)
    prepare_step: ONE read-only pass over the grads (non-finite flag + squared norm) -> multiplier, found_inf
    the fused step applies inv_scale * clip_coef in registers and skips everything on found_inf (no host sync)
    scaler.update() on the device

Managed optimizers: fastlight's fused ones (their step takes `grad_scale=`/`found_inf=`) and, when the loss is
scaled (16-mixed with a DeviceGradScaler), every other optimizer too (DeviceGradScaler.step multiplies their
grads and decides on the host whether to step: the one sync that remains, as in torch.amp.GradScaler).
"""
from typing import Any, Dict, List, Optional

import torch

from fastlight.engine.flat_buffer import FlatGradBuffer
from fastlight.engine.scaler import DeviceGradScaler, _step_takes_amp_kwargs


class FusedStepEngine:
    def __init__(self, scaler: Optional[DeviceGradScaler], device: torch.device) -> None:
        # disabled scaler (32-true, bf16-*): no scaling, no skipping; clipping still through its stats pass
        self.scaler = scaler if scaler is not None else DeviceGradScaler(device, enabled=False)
        self.scaling = self.scaler.is_enabled()
        self.flat: Dict[int, FlatGradBuffer] = {}  # id(optimizer) -> its flat gradient buffer
        self.flat_list: List[FlatGradBuffer] = []
        self._clip: Dict[int, tuple] = {}  # id(optimizer) -> (clip_val, algorithm) recorded by clip_gradients
        self._had_backward = False  # automatic optimization with flat grads: a backward ran in this window
        self.unscale_for_hooks = False  # set per run: a hook that reads grads is overridden
        # set per run: configure_gradient_clipping is overridden, so user code may read the grads right after
        # clip_gradients: clip them in place then (as Lightning does) instead of folding the clip into the step
        self.clip_in_place = False

    # ---- which optimizers -----------------------------------------------------------------------------
    def manages(self, optimizer: Any) -> bool:
        return self.scaling or _step_takes_amp_kwargs(optimizer)

    def needs_step_work(self, trainer: Any, optimizer: Any) -> bool:
        """False when the managed step is exactly `optimizer.step()` (nothing to scale, clip or bind)."""
        return self.scaling or trainer._clipping_active or id(optimizer) in self.flat

    def build_flat(self, optimizer: torch.optim.Optimizer) -> bool:
        """A FlatGradBuffer for `optimizer` unless one of its params already belongs to another buffer (two
        buffers would fight over the same `.grad`)."""
        covered = {id(p) for f in self.flat_list for p in f.params()}
        if any(id(p) in covered for g in optimizer.param_groups for p in g["params"]):
            return False
        flat = FlatGradBuffer(optimizer)  # patches optimizer.zero_grad: one memset, the views stay
        self.flat[id(optimizer)] = flat  # the buffer is held here: the optimizer's patches are weak references
        self.flat_list.append(flat)
        return True

    # ---- per step ---------------------------------------------------------------------------------------
    def before_backward(self) -> None:
        """Automatic optimization only: repair views a hook or module.zero_grad() dropped, so autograd
        accumulates into the buffer. (Manual optimization re-binds at zero_grad and at the step instead:
        toggle_optimizer flips requires_grad of the other optimizers' params, which would rebuild here.)"""
        for flat in self.flat_list:
            flat.ensure_bound()
        self._had_backward = True

    def record_clip(self, optimizer: Any, clip_val: float, algorithm: str) -> None:
        # nothing is clipped now: the coefficient goes into the step's multiplier (by value: clamped in
        # prepare_step, in the scaled domain)
        self._clip[id(optimizer)] = (clip_val, algorithm)

    def grads(self, optimizer: Any) -> List[torch.Tensor]:
        flat = self.flat.get(id(optimizer))
        if flat is not None:
            flat.ensure_bound()
            return flat.buffers
        return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]

    def step(self, trainer: Any, precision: Any, optimizer: Any, closure_result: Any, **kwargs: Any) -> Any:
        """Everything after the closure (training_step, zero_grad, backward) ran, in Lightning's order."""
        scaler = self.scaler
        automatic = trainer._module._automatic_optimization
        # Lightning (16-mixed): backward skipped in automatic optimization -> no unscale, no step, no update
        skipped = closure_result is None and automatic
        if self.scaling:
            if isinstance(optimizer, torch.optim.LBFGS):
                raise TypeError("AMP and the LBFGS optimizer are not compatible.")
            if not skipped and (self.unscale_for_hooks or not _step_takes_amp_kwargs(optimizer)):
                # hooks see unscaled grads, as in Lightning (one extra read+write pass, only then)
                scaler.unscale_(self.grads(optimizer), key=optimizer)
        precision._after_closure(trainer, optimizer)
        clip = self._clip.pop(id(optimizer), None)
        flat = self.flat.get(id(optimizer))
        if skipped and (self.scaling or (flat is not None and not self._had_backward)):
            # with flat grads, "no backward in the window" reads as zero grads, not None: a stateful optimizer
            # would still decay/move its moments, where torch's skips params without grads. Do not step.
            scaler._stage.pop(id(optimizer), None)
            return closure_result
        if automatic:
            self._had_backward = False
        grads = self.grads(optimizer)
        if not grads:  # nothing to scale or clip (every grad is None): the plain step does nothing either
            scaler._stage.pop(id(optimizer), None)
            return optimizer.step(**kwargs)
        if clip is None and not self.scaling:
            return optimizer.step(**kwargs)
        clip_val, algorithm = clip if clip is not None else (None, "norm")
        inputs = scaler.prepare_step(grads, clip_val, algorithm, key=optimizer)
        out = scaler.step(optimizer, inputs, grads, **kwargs)
        scaler.update()  # after every step, as Lightning's MixedPrecision plugin does (no-op when disabled)
        return out
