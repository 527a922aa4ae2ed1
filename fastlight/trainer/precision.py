"""Precision plugins: where the loss is scaled and backpropagated, gradients clipped, and the optimizer stepped.

These three methods are the seams the engine plugs into (fused optimizers, device-side loss scaler):
`backward`, `optimizer_step` and `clip_gradients`. The hooks fire in Lightning's order:
on_before_backward (with the scaled loss), backward, on_after_backward; then, inside `optimizer.step`, the
closure, on_before_optimizer_step, configure_gradient_clipping, the step itself.
"""
import contextlib
from functools import partial
from typing import Any, Callable, Optional

import torch
from torch import Tensor

_SUPPORTED = ("32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "64-true")
_ALIASES = {
    "32": "32-true", 32: "32-true", "32-true": "32-true",
    "16": "16-mixed", 16: "16-mixed", "16-mixed": "16-mixed", "16-true": "16-true",
    "bf16": "bf16-mixed", "bf16-mixed": "bf16-mixed", "bf16-true": "bf16-true",
    "64": "64-true", 64: "64-true", "64-true": "64-true",
}


def normalize_precision(precision: Any) -> str:
    if precision is None:
        return "32-true"
    key = precision if not isinstance(precision, str) else precision.lower()
    if key not in _ALIASES:
        from fastlight.trainer.config import ConfigError

        raise ConfigError(
            f"Precision {precision!r} is invalid. Allowed precision values: {sorted(set(_ALIASES.values()))}"
            " (also 32, 16, 64, 'bf16')."
        )
    return _ALIASES[key]


def _convert_floats(data: Any, dtype: torch.dtype) -> Any:
    if isinstance(data, Tensor):
        return data.to(dtype) if data.is_floating_point() else data
    if isinstance(data, (list, tuple)):
        out = [_convert_floats(d, dtype) for d in data]
        return type(data)(*out) if hasattr(data, "_fields") else type(data)(out)
    if isinstance(data, dict):
        return type(data)({k: _convert_floats(v, dtype) for k, v in data.items()})
    return data


class Precision:
    """32-true: plain fp32 (the base for the others)."""

    precision = "32-true"
    scaler: Optional[Any] = None
    # the fused engine's step (fastlight/trainer/fused_step.py), set by the Trainer when it is used
    _engine: Optional[Any] = None

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module

    def convert_input(self, batch: Any) -> Any:
        return batch

    def forward_context(self) -> contextlib.AbstractContextManager:
        return contextlib.nullcontext()

    def tensor_init_context(self) -> contextlib.AbstractContextManager:
        """Where `Trainer.init_module` creates tensors: the default dtype (a "-true" precision sets its own)."""
        return contextlib.nullcontext()

    # -- backward ------------------------------------------------------------------------------------
    def pre_backward(self, loss: Tensor) -> Tensor:
        return loss

    def backward(self, trainer: Any, loss: Tensor, optimizer: Optional[Any], *args: Any, **kwargs: Any) -> Tensor:
        """on_before_backward hooks, `LightningModule.backward`, on_after_backward hooks."""
        loss = self.pre_backward(loss)
        engine = self._engine
        if engine is not None and engine.flat_list and trainer._module._automatic_optimization:
            engine.before_backward()
        active = trainer._active_hooks  # hooks nobody listens to are not dispatched (resolved once per run)
        if "on_before_backward" in active:
            trainer._call_callbacks("on_before_backward", loss)
            trainer._call_module("on_before_backward", loss)
        if "backward" in active:
            trainer._call_module("backward", loss, *args, **kwargs)
        else:
            loss.backward(*args, **kwargs)  # LightningModule.backward's body
        if "on_after_backward" in active:
            trainer._call_callbacks("on_after_backward")
            trainer._call_module("on_after_backward")
        return loss

    # -- step ----------------------------------------------------------------------------------------
    def _after_closure(self, trainer: Any, optimizer: Any) -> None:
        if "on_before_optimizer_step" in trainer._active_hooks:
            trainer._call_callbacks("on_before_optimizer_step", optimizer)
            trainer._call_module("on_before_optimizer_step", optimizer)
        if trainer._clipping_active and trainer._module._automatic_optimization:
            trainer._call_module(
                "configure_gradient_clipping", optimizer,
                gradient_clip_val=trainer.gradient_clip_val, gradient_clip_algorithm=trainer.gradient_clip_algorithm,
            )

    def _wrap_closure(self, trainer: Any, optimizer: Any, closure: Callable[[], Any]) -> Any:
        result = closure()
        self._after_closure(trainer, optimizer)
        return result

    def optimizer_step(self, optimizer: Any, trainer: Any, closure: Callable[[], Any], **kwargs: Any) -> Any:
        engine = self._engine
        if engine is not None and engine.manages(optimizer):
            # the closure first, as torch's and fastlight's Adam/AdamW/SGD do inside step(closure)
            closure_result = closure()
            out = engine.step(trainer, self, optimizer, closure_result, **kwargs)
            return closure_result if out is None else out  # what step(closure) returns: the closure's loss
        return optimizer.step(closure=partial(self._wrap_closure, trainer, optimizer, closure), **kwargs)

    # -- clipping ------------------------------------------------------------------------------------
    def clip_gradients(self, optimizer: Any, clip_val: float, algorithm: str) -> None:
        if clip_val <= 0:
            return
        engine = self._engine
        if engine is not None:
            from fastlight.core.optimizer import LightningOptimizer

            inner = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
            if engine.manages(inner) and not engine.clip_in_place:
                # folded into the step (one stats pass), nothing clipped in place now
                engine.record_clip(inner, clip_val, algorithm)
                return
        params = [p for group in optimizer.param_groups for p in group["params"]]
        if algorithm == "value":
            torch.nn.utils.clip_grad_value_(params, clip_val)
        else:
            torch.nn.utils.clip_grad_norm_(params, clip_val)

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class MixedPrecision(Precision):
    """16-mixed (autocast fp16 + a loss scaler) and bf16-mixed (autocast bf16, no scaler).

    scaler: torch.amp.GradScaler (the default; what Lightning uses) or fastlight's DeviceGradScaler (the
    Trainer's choice with fused=True: scale on the device, clipping folded into the step, no host sync).
    """

    def __init__(self, precision: str, device_type: str, scaler: Optional[Any] = None) -> None:
        if precision not in ("16-mixed", "bf16-mixed"):
            raise ValueError(f"MixedPrecision(precision={precision!r}): must be '16-mixed' or 'bf16-mixed'.")
        if scaler is not None and precision == "bf16-mixed":
            raise ValueError(f"MixedPrecision: precision='bf16-mixed' does not use a scaler, got {scaler!r}.")
        self.precision = precision
        self.device_type = device_type
        if scaler is None and precision == "16-mixed":
            scaler = torch.amp.GradScaler(device=device_type)
        self.scaler = scaler
        self._dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16

    def forward_context(self) -> contextlib.AbstractContextManager:
        return torch.autocast(self.device_type, dtype=self._dtype, cache_enabled=False)

    def pre_backward(self, loss: Tensor) -> Tensor:
        if self.scaler is not None:
            loss = self.scaler.scale(loss)
        return loss

    def optimizer_step(self, optimizer: Any, trainer: Any, closure: Callable[[], Any], **kwargs: Any) -> Any:
        if self.scaler is None or self._engine is not None:
            return super().optimizer_step(optimizer, trainer, closure, **kwargs)
        if isinstance(optimizer, torch.optim.LBFGS):
            raise TypeError("AMP and the LBFGS optimizer are not compatible.")
        closure_result = closure()
        if not getattr(optimizer, "_step_supports_amp_scaling", False):
            # host-device sync inside torch: unscale_ records found_inf per device (GradScaler's design)
            self.scaler.unscale_(optimizer)
        self._after_closure(trainer, optimizer)
        skipped_backward = closure_result is None
        if not trainer._module.automatic_optimization or not skipped_backward:
            # GradScaler.step reads found_inf on the host (sync) for non-fused optimizers: the engine removes it
            out = self.scaler.step(optimizer, **kwargs)
            self.scaler.update()
            return out
        return closure_result

    def clip_gradients(self, optimizer: Any, clip_val: float, algorithm: str) -> None:
        if self._engine is not None:  # the engine clips fused optimizers under AMP too (Lightning refuses)
            return super().clip_gradients(optimizer, clip_val, algorithm)
        if clip_val > 0 and getattr(optimizer, "_step_supports_amp_scaling", False):
            raise RuntimeError(
                f"The current optimizer, {type(optimizer).__qualname__}, does not allow for gradient clipping"
                " because it performs unscaling of gradients internally. HINT: Are you using a 'fused' optimizer?"
            )
        super().clip_gradients(optimizer, clip_val, algorithm)

    def state_dict(self) -> dict:
        return self.scaler.state_dict() if self.scaler is not None else {}

    def load_state_dict(self, state: dict) -> None:
        if self.scaler is not None:
            self.scaler.load_state_dict(state)


_TRUE_DTYPES = {"16-true": torch.float16, "bf16-true": torch.bfloat16, "64-true": torch.float64}


class _DefaultDtype:
    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype
        self.previous = None

    def __enter__(self) -> None:
        self.previous = torch.get_default_dtype()
        torch.set_default_dtype(self.dtype)

    def __exit__(self, *exc: Any) -> None:
        torch.set_default_dtype(self.previous)


class TruePrecision(Precision):
    """16-true / bf16-true / 64-true: module and floating inputs cast to the dtype, default dtype set inside steps."""

    def __init__(self, precision: str) -> None:
        self.precision = precision
        self.dtype = _TRUE_DTYPES[precision]

    def convert_module(self, module: torch.nn.Module) -> torch.nn.Module:
        return module.to(dtype=self.dtype)

    def convert_input(self, batch: Any) -> Any:
        return _convert_floats(batch, self.dtype)

    def forward_context(self) -> contextlib.AbstractContextManager:
        return _DefaultDtype(self.dtype)

    def tensor_init_context(self) -> contextlib.AbstractContextManager:
        return _DefaultDtype(self.dtype)


def make_precision(precision: str, device_type: str, fused: bool = False,
                   device: Optional[torch.device] = None) -> Precision:
    if precision == "32-true":
        return Precision()
    if precision == "16-mixed" and fused:
        from fastlight.engine.scaler import DeviceGradScaler

        # the scale lives on the training device (lazily created there at the first scale())
        return MixedPrecision(precision, device_type, scaler=DeviceGradScaler(device or device_type))
    if precision in ("16-mixed", "bf16-mixed"):
        return MixedPrecision(precision, device_type)
    return TruePrecision(precision)
