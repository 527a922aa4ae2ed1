"""Device-side dynamic loss scaling with gradient clipping folded into one read-only pass over the grads.

DeviceGradScaler has torch.amp.GradScaler's defaults, skip/backoff/growth sequence and state_dict format,
but splits the optimizer-side work differently:

    torch:      unscale_ (read+write every grad, inf check) -> clip_grad_norm_ (norm: read; clip: read+write)
                -> step (reads the unscaled grads) -> update
    fastlight:  prepare_step: ONE read-only pass (fastlight.ops.grad_stats: sum of squares + non-finite flag)
                -> a few 0-dim device ops give `grad_multiplier` = inv_scale * clip_coef and `found_inf`
                -> the fused step multiplies the grads by grad_multiplier in registers and skips on found_inf
                -> update (torch._amp_update_scale_, on the device)

Nothing here reads a device value on the host per step, except where a non-fused optimizer has to be
skipped on found_inf (see `step`). The same object serves precision 32-true / bf16-mixed with
`enabled=False`: no scaling, no skipping (as in torch), but clipping through the same stats pass.
"""
import enum
import inspect
from typing import Any, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Union

import torch

from .. import ops

__all__ = ["DeviceGradScaler", "StepInputs", "ClipAlgorithm"]


class ClipAlgorithm(str, enum.Enum):
    NORM = "norm"
    VALUE = "value"


class StepInputs(NamedTuple):
    """What the optimizer step needs; every field is a 0-dim float32 tensor on the grads' device, or None.

    grad_multiplier: multiply every grad by this (inv_scale x clip coefficient); None means 1.
    found_inf: nonzero -> skip the step (params, state and step counters untouched); None: never skip.
    grad_norm: total 2-norm of the unscaled grads before clipping (computed whenever the stats pass ran).
    """

    grad_multiplier: Optional[torch.Tensor]
    found_inf: Optional[torch.Tensor]
    grad_norm: Optional[torch.Tensor]


class _Stage(enum.Enum):
    READY = 0
    UNSCALED = 1
    PREPARED = 2


def _grads_of(optimizer: torch.optim.Optimizer) -> List[torch.Tensor]:
    return [p.grad for g in optimizer.param_groups for p in g["params"] if p.grad is not None]


def _by_device(tensors: Sequence[torch.Tensor]) -> Dict[torch.device, List[torch.Tensor]]:
    out: Dict[torch.device, List[torch.Tensor]] = {}
    for t in tensors:
        out.setdefault(t.device, []).append(t)
    return out


class DeviceGradScaler:
    """Dynamic loss scaler whose scale and growth tracker live on the device.

    Args (as torch.amp.GradScaler): device, init_scale=2**16, growth_factor=2.0, backoff_factor=0.5,
    growth_interval=2000, enabled=True. The state tensors are created on `device` at the first `scale()`
    or `prepare_step()` (on the device of the tensor seen there when `device` is None).

    Per optimizer step (see docs/engine_integration.md):
        loss_for_backward = scaler.scale(loss); loss_for_backward.backward()     # each micro-batch
        inputs = scaler.prepare_step(grads, clip_val=..., clip_algorithm="norm")  # once, after all backwards
        scaler.step(optimizer, inputs, grads)                                    # or the fused op directly
        scaler.update()
    """

    def __init__(
        self,
        device: Union[str, torch.device, None] = None,
        init_scale: float = 2.0**16,
        growth_factor: float = 2.0,
        backoff_factor: float = 0.5,
        growth_interval: int = 2000,
        enabled: bool = True,
    ):
        self._enabled = bool(enabled)
        if self._enabled:
            if not growth_factor > 1.0:
                raise ValueError(f"DeviceGradScaler: growth_factor must be > 1.0, got {growth_factor}")
            if not backoff_factor < 1.0:
                raise ValueError(f"DeviceGradScaler: backoff_factor must be < 1.0, got {backoff_factor}")
            if int(growth_interval) != growth_interval or growth_interval <= 0:
                raise ValueError(f"DeviceGradScaler: growth_interval must be a positive int, got {growth_interval}")
        self._device = torch.device(device) if device is not None else None
        self._init_scale = float(init_scale)
        self._growth_factor = float(growth_factor)
        self._backoff_factor = float(backoff_factor)
        self._growth_interval = int(growth_interval)
        self._init_growth_tracker = 0
        self._scale: Optional[torch.Tensor] = None
        self._growth_tracker: Optional[torch.Tensor] = None
        self._found_infs: List[torch.Tensor] = []  # since the last update(), one per prepared optimizer
        self._stage: Dict[int, _Stage] = {}  # id(optimizer or grads list owner) -> stage
        # The state tensors are made at the first scale()/prepare_step()/unscale_(), not here: constructing a
        # scaler must work before the device is usable (as torch's, which is lazy too).

    # ---- state -----------------------------------------------------------------------------------------

    def _lazy_init(self, device: torch.device) -> None:
        if self._scale is None:
            self._scale = torch.full((), self._init_scale, dtype=torch.float32, device=device)
            self._growth_tracker = torch.full((), self._init_growth_tracker, dtype=torch.int32, device=device)

    def is_enabled(self) -> bool:
        return self._enabled

    @property
    def scale_tensor(self) -> Optional[torch.Tensor]:
        """The 0-dim float32 scale on the device (None before the first use or when disabled)."""
        return self._scale

    def get_scale(self) -> float:
        """The scale as a Python float. Host sync: for logging and checkpoints only."""
        if not self._enabled:
            return 1.0
        if self._scale is None:
            return self._init_scale
        return float(self._scale.item())  # sync: the caller asked for a host number

    def _get_growth_tracker(self) -> int:
        if not self._enabled:
            return 0
        if self._growth_tracker is None:
            return self._init_growth_tracker
        return int(self._growth_tracker.item())  # sync: checkpoint time only

    def state_dict(self) -> Dict[str, Any]:
        """torch.amp.GradScaler's format (Lightning stores it under the checkpoint key "MixedPrecision")."""
        if not self._enabled:
            return {}
        return {
            "scale": self.get_scale(),
            "growth_factor": self._growth_factor,
            "backoff_factor": self._backoff_factor,
            "growth_interval": self._growth_interval,
            "_growth_tracker": self._get_growth_tracker(),
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Loads a state_dict of this class or of torch.amp.GradScaler. No-op when disabled (as torch)."""
        if not self._enabled:
            return
        if len(state_dict) == 0:
            raise RuntimeError(
                "DeviceGradScaler.load_state_dict: the state dict is empty, so it was saved from a disabled scaler"
            )
        missing = [k for k in ("scale", "growth_factor", "backoff_factor", "growth_interval", "_growth_tracker")
                   if k not in state_dict]
        if missing:
            raise KeyError(f"DeviceGradScaler.load_state_dict: missing keys {missing}")
        self._init_scale = float(state_dict["scale"])
        self._growth_factor = float(state_dict["growth_factor"])
        self._backoff_factor = float(state_dict["backoff_factor"])
        self._growth_interval = int(state_dict["growth_interval"])
        self._init_growth_tracker = int(state_dict["_growth_tracker"])
        if self._scale is not None:
            self._scale.fill_(self._init_scale)
            self._growth_tracker.fill_(self._init_growth_tracker)

    # ---- forward/backward --------------------------------------------------------------------------------

    def scale(self, outputs):
        """outputs * scale (a tensor, or nested lists/tuples of tensors). Identity when disabled."""
        if not self._enabled:
            return outputs
        if isinstance(outputs, torch.Tensor):
            self._lazy_init(self._device or outputs.device)
            s = self._scale if self._scale.device == outputs.device else self._scale.to(outputs.device, non_blocking=True)
            return outputs * s
        if isinstance(outputs, (list, tuple)):
            return type(outputs)(self.scale(o) for o in outputs)
        if isinstance(outputs, Iterable):
            return map(self.scale, outputs)
        raise TypeError(f"DeviceGradScaler.scale: outputs must be a tensor or an iterable of tensors, got {type(outputs)}")

    # ---- optimizer side ----------------------------------------------------------------------------------

    def _inv_scale(self) -> torch.Tensor:
        # As torch: the reciprocal in float64, so it is exact for the power-of-two scales (no host sync).
        return self._scale.double().reciprocal().float()

    def unscale_(self, grads: Sequence[torch.Tensor], key: Any = None) -> None:
        """Unscale the grads in place (read + write every element). Only for code that must see unscaled grads
        before the step (e.g. an on_before_optimizer_step hook that reads them); the fused path never needs it.
        `key` identifies the optimizer (so unscale_ twice raises, as in torch)."""
        if not self._enabled:
            return
        k = id(key) if key is not None else None
        if self._stage.get(k) is not None:
            raise RuntimeError("DeviceGradScaler.unscale_: already unscaled or prepared since the last update()")
        grads = [g for g in grads if g is not None]
        if not grads:
            self._stage[k] = _Stage.UNSCALED
            return
        self._lazy_init(self._device or grads[0].device)
        inv = self._inv_scale()
        for device, gs in _by_device(grads).items():
            # The flag this op sets is not kept: unscaling keeps inf/nan as they are, so the stats pass in
            # prepare_step sees them (and anything a hook did to the grads in between).
            scratch = torch.zeros((), dtype=torch.float32, device=device)
            for dtype_group in _by_dtype(gs):
                torch._amp_foreach_non_finite_check_and_unscale_(dtype_group, scratch, inv.to(device, non_blocking=True))
        self._stage[k] = _Stage.UNSCALED

    def prepare_step(
        self,
        grads: Sequence[torch.Tensor],
        clip_val: Optional[float] = None,
        clip_algorithm: Union[str, ClipAlgorithm] = ClipAlgorithm.NORM,
        key: Any = None,
        need_norm: bool = False,
    ) -> StepInputs:
        """One read-only stats pass over `grads` (ideally FlatGradBuffer.buffers) -> StepInputs.

        clip_val: None or 0 -> no clipping. clip_algorithm "norm": coefficient min(1, clip_val / (norm + 1e-6))
        of the unscaled 2-norm, as torch.nn.utils.clip_grad_norm_; "value": the grads are clamped in place to
        +-clip_val * scale (the scaled image of +-clip_val: exact, scales are powers of two), a second pass
        that reads and writes every grad, as clip_grad_value_ does.
        key: the optimizer these grads belong to (one prepare per optimizer per update()).
        need_norm: run the stats pass even when nothing else needs it (disabled and no clipping), for logging.
        """
        clip_algorithm = ClipAlgorithm(clip_algorithm)
        clip = clip_val is not None and clip_val > 0
        if clip and clip_algorithm is ClipAlgorithm.NORM and not (clip_val == clip_val and clip_val != float("inf")):
            raise ValueError(f"DeviceGradScaler.prepare_step: clip_val must be finite, got {clip_val}")
        k = id(key) if key is not None else None
        stage = self._stage.get(k)
        if stage is _Stage.PREPARED:
            raise RuntimeError("DeviceGradScaler.prepare_step: called twice for the same optimizer before update()")
        grads = [g for g in grads if g is not None]
        if not grads:
            raise ValueError("DeviceGradScaler.prepare_step: no gradients (all None)")
        scaling = self._enabled and stage is not _Stage.UNSCALED
        if self._enabled:
            self._lazy_init(self._device or grads[0].device)
        if not self._enabled and not clip and not need_norm:
            self._stage[k] = _Stage.PREPARED
            return StepInputs(None, None, None)

        stats = self._stats(grads)
        sq, flag = stats[0], stats[1]
        inv = self._inv_scale() if scaling else None
        norm = sq.sqrt()
        if inv is not None:
            norm = norm * inv
        multiplier = inv
        if clip and clip_algorithm is ClipAlgorithm.NORM:
            coef = torch.clamp(float(clip_val) / (norm + 1e-6), max=1.0)
            multiplier = coef if inv is None else inv * coef
        elif clip and clip_algorithm is ClipAlgorithm.VALUE:
            # Clamp in the scaled domain: clamp(g, +-v*scale) * inv == clamp(g * inv, +-v) bit for bit, because
            # the scale is a power of two; so unscaling stays in the step and this is the only extra pass.
            bound = self._scale * float(clip_val) if scaling else None
            for g in grads:
                if bound is None:
                    g.clamp_(-float(clip_val), float(clip_val))
                else:
                    b = bound.to(g.device, non_blocking=True) if bound.device != g.device else bound
                    g.clamp_(min=-b, max=b)
        found_inf = None
        if self._enabled:
            found_inf = flag
            self._found_infs.append(found_inf)
        self._stage[k] = _Stage.PREPARED
        return StepInputs(multiplier, found_inf, norm)

    def _stats(self, grads: Sequence[torch.Tensor]) -> torch.Tensor:
        groups = _by_device(grads)
        home = self._scale.device if self._scale is not None else grads[0].device
        total = None
        for device, gs in groups.items():
            s = ops.grad_stats(gs)
            if s.device != home:
                s = s.to(home, non_blocking=True)
            # flag summed: nonzero means "some device saw inf/nan", which is all found_inf means
            total = s if total is None else total + s
        return total

    def step(
        self,
        optimizer: torch.optim.Optimizer,
        inputs: StepInputs,
        grads: Optional[Sequence[torch.Tensor]] = None,
        *args,
        **kwargs,
    ):
        """Run optimizer.step() with `inputs` applied; returns what step returned (None when skipped).

        - fastlight fused optimizers (their `step` takes keyword arguments `grad_scale` and `found_inf`):
          `optimizer.step(*args, grad_scale=grad_multiplier, found_inf=found_inf, **kwargs)`, the multiplier
          applied in registers;
        - torch optimizers that handle AMP scaling (`_step_supports_amp_scaling`, e.g. AdamW(fused=True)):
          the same attributes in torch's convention (grads are DIVIDED by grad_scale), so grad_scale is
          1 / grad_multiplier (exact without clipping: a power of two);
        - any other optimizer: grads *= grad_multiplier in place (`grads`, e.g. the flat buffers; else the
          optimizer's grads), then the step is skipped on found_inf. That needs the flag on the host: a sync.
        """
        mult, found_inf = inputs.grad_multiplier, inputs.found_inf
        if mult is None and found_inf is None:
            return optimizer.step(*args, **kwargs)
        if _step_takes_amp_kwargs(optimizer):
            return optimizer.step(*args, grad_scale=mult, found_inf=found_inf, **kwargs)
        if getattr(optimizer, "_step_supports_amp_scaling", False):
            divisor = None if mult is None else torch.reciprocal(mult)
            return self._step_with_attrs(optimizer, divisor, found_inf, *args, **kwargs)
        if mult is not None:
            gs = list(grads) if grads is not None else _grads_of(optimizer)
            for device, dgs in _by_device(gs).items():
                m = mult if mult.device == device else mult.to(device, non_blocking=True)
                if len(dgs) == 1:
                    dgs[0].mul_(m)
                else:
                    torch._foreach_mul_(dgs, m)
        if found_inf is not None:
            # Host sync, unavoidable here: a generic optimizer.step() has no way to take the flag as a tensor,
            # so whether to call it at all is decided on the host (torch.amp.GradScaler syncs here too).
            if found_inf.item() != 0.0:
                return None
        return optimizer.step(*args, **kwargs)

    @staticmethod
    def _step_with_attrs(optimizer, grad_scale, found_inf, *args, **kwargs):
        had_gs, had_fi = hasattr(optimizer, "grad_scale"), hasattr(optimizer, "found_inf")
        if had_gs or had_fi:
            raise RuntimeError(
                f"DeviceGradScaler.step: {type(optimizer).__name__} already has a grad_scale/found_inf attribute "
                "(is torch.amp.GradScaler stepping it too?)"
            )
        optimizer.grad_scale = grad_scale
        optimizer.found_inf = found_inf
        try:
            return optimizer.step(*args, **kwargs)
        finally:
            del optimizer.grad_scale
            del optimizer.found_inf

    def update(self, new_scale: Union[float, torch.Tensor, None] = None) -> None:
        """Backoff on any found_inf since the last update, grow after growth_interval clean steps; on the device.
        With new_scale: set the scale instead (as torch). Resets the per-optimizer stages."""
        if not self._enabled:
            self._stage.clear()
            return
        if self._scale is None:
            if self._device is None:
                raise RuntimeError(
                    "DeviceGradScaler.update: nothing was scaled or prepared since the scaler was made (and no "
                    "device was given)"
                )
            self._lazy_init(self._device)
        if new_scale is not None:
            if isinstance(new_scale, torch.Tensor):
                if new_scale.numel() != 1 or new_scale.requires_grad:
                    raise ValueError("DeviceGradScaler.update: new_scale must be a 1-element tensor without grad")
                self._scale.copy_(new_scale.reshape(()))
            else:
                self._scale.fill_(float(new_scale))
        else:
            if not self._found_infs:
                raise RuntimeError("DeviceGradScaler.update: no prepare_step() (inf check) since the last update()")
            found = self._found_infs[0]
            for f in self._found_infs[1:]:
                found = found + f
            if found.device != self._scale.device:
                found = found.to(self._scale.device, non_blocking=True)
            torch._amp_update_scale_(
                self._scale, self._growth_tracker, found, self._growth_factor, self._backoff_factor, self._growth_interval
            )
        self._found_infs = []
        self._stage.clear()

    def __repr__(self):
        return (
            f"DeviceGradScaler(enabled={self._enabled}, init_scale={self._init_scale}, growth_factor={self._growth_factor}, "
            f"backoff_factor={self._backoff_factor}, growth_interval={self._growth_interval})"
        )


_AMP_KWARGS_CACHE: Dict[type, Tuple[Any, bool]] = {}  # class -> (its step function, whether it takes them)


def _step_takes_amp_kwargs(optimizer) -> bool:
    """True for optimizers whose step(..., grad_scale=, found_inf=) takes the multiplier directly (fastlight's
    fused optimizers). Decided once per class and step function from the signature (decorators keep it via
    __wrapped__). A step that is no function (a mock patched onto the class) is not inspected: inspecting it
    would show up in the mock's recorded calls."""
    cls = type(optimizer)
    fn = getattr(cls, "step", None)
    known = _AMP_KWARGS_CACHE.get(cls)
    if known is not None and known[0] is fn:
        return known[1]
    raw = inspect.unwrap(fn) if inspect.isfunction(fn) else fn
    if not inspect.isfunction(raw):
        return False
    params = inspect.signature(raw).parameters
    takes = "grad_scale" in params and "found_inf" in params
    _AMP_KWARGS_CACHE[cls] = (fn, takes)
    return takes


def _by_dtype(tensors: Sequence[torch.Tensor]) -> List[List[torch.Tensor]]:
    out: Dict[torch.dtype, List[torch.Tensor]] = {}
    for t in tensors:
        out.setdefault(t.dtype, []).append(t)
    return list(out.values())
