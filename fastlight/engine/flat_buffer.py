"""Flat gradient buffers: per (device, dtype) one contiguous gradient buffer, `param.grad` views into it.

Why: the optimizer-side work (non-finite check, norm, unscale/clip, step, zero_grad) then runs over one
tensor per (device, dtype) instead of a list of hundreds: one kernel launch, one OpenMP region, one memset.

Layout of a bucket (one per (device, dtype), in the order the optimizer's param groups list them):

    flat: [ p0 | pad | p1 | pad | ... | pN | pad ]      each segment starts 16-byte aligned, padding stays zero
    group_segments: [(group_index, start, stop), ...]    params of one param group are one contiguous range

Invariants the class keeps:
- every trainable param of the optimizer (requires_grad=True) has `param.grad` = its view, always defined;
  frozen params are left out (their grad stays None), a param listed twice (tied weights) is stored once;
- autograd accumulates into existing grads in place (AccumulateGrad adds into a defined `.grad`), so
  gradient accumulation over micro-batches needs nothing special;
- `zero_grad` is one memset per bucket; `optimizer.zero_grad(set_to_none=...)` is patched to do exactly that;
- anything that replaces `.grad` behind our back (`module.zero_grad()`, `p.grad = None`, `p.grad = t`) is
  repaired by `ensure_bound()` (the value is kept: None -> zeros, a tensor -> copied into the view);
- `model.to(...)`, dtype changes, `add_param_group` and requires_grad flips rebuild the buffers
  (the current gradient values are carried over).

Known difference from per-tensor grads: a trainable param that gets no gradient in a step sees a zero
gradient instead of None, so a stateful optimizer still updates it (weight decay, momentum). DDP with
`gradient_as_bucket_view=True` behaves the same way.
"""
import operator
import types
import weakref
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import torch

from ..utilities.rank_zero import rank_zero_warn

__all__ = ["FlatGradBuffer", "GradBucket", "ALIGN_BYTES"]

ALIGN_BYTES = 16

# map() with C getters: the per-step checks below run over every param, a generator costs ~2x more
_get_grad = operator.attrgetter("grad")
_get_requires_grad = operator.attrgetter("requires_grad")
_data_ptr = torch.Tensor.data_ptr


def _is_dense_non_overlapping(t: torch.Tensor) -> bool:
    """True when the elements of t fill exactly numel() consecutive slots (any dim order), e.g. contiguous,
    channels_last or transposed; then a segment of a flat buffer can hold it with t's own strides."""
    dims = sorted((s, n) for s, n in zip(t.stride(), t.shape) if n != 1)
    expected = 1
    for stride, size in dims:
        if stride != expected:
            return False
        expected *= size
    return True


def _align_elems(dtype: torch.dtype) -> int:
    size = torch.empty((), dtype=dtype).element_size()
    return max(1, ALIGN_BYTES // size)


class GradBucket:
    """One (device, dtype) gradient buffer. Read-only for users; FlatGradBuffer owns it."""

    __slots__ = ("device", "dtype", "flat", "params", "views", "offsets", "group_segments", "param_flat",
                 "_base_ptr", "_param_ptrs")

    def __init__(self, device: torch.device, dtype: torch.dtype):
        self.device = device
        self.dtype = dtype
        self.flat: torch.Tensor = torch.empty(0, device=device, dtype=dtype)
        self.params: List[torch.nn.Parameter] = []
        self.views: List[torch.Tensor] = []
        self.offsets: List[int] = []  # element offset of each param's segment in flat
        # (param group index, first element, end element) for each param group present in this bucket
        self.group_segments: List[Tuple[int, int, int]] = []
        # with flat_params=True: the params' storage, same layout as flat (param.data are views into it)
        self.param_flat: Optional[torch.Tensor] = None
        self._base_ptr = 0
        self._param_ptrs: List[int] = []

    def new_flat(self) -> torch.Tensor:
        """A zero tensor with this bucket's layout (e.g. for flat optimizer state such as exp_avg)."""
        return torch.zeros_like(self.flat)

    def split(self, flat: torch.Tensor) -> List[torch.Tensor]:
        """Per-param views of a tensor with this bucket's layout, with each param's shape and strides."""
        if flat.shape != self.flat.shape:
            raise ValueError(f"GradBucket.split: expected a tensor of shape {tuple(self.flat.shape)}, got {tuple(flat.shape)}")
        return [flat.as_strided(p.shape, p.stride(), off) for p, off in zip(self.params, self.offsets)]

    def __repr__(self):
        return (
            f"GradBucket(device={self.device}, dtype={self.dtype}, params={len(self.params)}, "
            f"numel={self.flat.numel()}, groups={[g for g, _, _ in self.group_segments]})"
        )


class FlatGradBuffer:
    """Flat gradient buffers for the trainable params of `optimizer`.

    Args:
        optimizer: any torch.optim.Optimizer; its param groups define which params are covered and the order.
        patch_optimizer: replace `optimizer.zero_grad` with the memset (whatever `set_to_none` says) and
            `optimizer.add_param_group` with a version that rebuilds the buffers. `detach()` undoes both.
        flat_params: also move the params' storage into one buffer per bucket with the same layout
            (`bucket.param_flat`; `param.data` become views, the Parameter objects stay the same), so a fused
            step can run over single tensors (params, grads, and state made with `bucket.new_flat()`).
            Saving one param alone (torch.save(p)) then writes the whole buffer; model.state_dict() is fine.

    Use: build once after the model is on its device and the optimizer exists; call `ensure_bound()` before
    each backward (cheap check, repairs views dropped by `module.zero_grad()` or `p.grad = None`) and
    before the optimizer-side work; read the buffers from `buffers` (one tensor per (device, dtype)).
    """

    def __init__(self, optimizer: torch.optim.Optimizer, *, patch_optimizer: bool = True, flat_params: bool = False):
        if not isinstance(optimizer, torch.optim.Optimizer):
            raise TypeError(f"FlatGradBuffer: optimizer must be a torch.optim.Optimizer, got {type(optimizer).__name__}")
        self._optimizer_ref = weakref.ref(optimizer)
        self._buckets: List[GradBucket] = []
        self._frozen: List[torch.Tensor] = []  # params of the optimizer left out (requires_grad=False)
        self._index: Dict[int, Tuple[int, int]] = {}  # id(param) -> (bucket index, position in bucket)
        self._dirty = False
        self._flat_params = bool(flat_params)
        self._patched: Dict[str, object] = {}
        self.rebuild_count = 0
        self.repair_count = 0  # ensure_bound calls that had to re-bind views
        self.copy_count = 0  # of those, repairs that found a foreign gradient tensor and copied it in
        self._warned_copies = False
        self.rebuild()
        if patch_optimizer:
            self._patch(optimizer)

    # ---- structure -------------------------------------------------------------------------------------

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        opt = self._optimizer_ref()
        if opt is None:
            raise RuntimeError("FlatGradBuffer: its optimizer was garbage collected")
        return opt

    @property
    def buckets(self) -> List[GradBucket]:
        return self._buckets

    @property
    def buffers(self) -> List[torch.Tensor]:
        """The flat gradient tensors, one per (device, dtype): the input of the stats pass and the step."""
        return [b.flat for b in self._buckets]

    def params(self) -> Iterator[torch.nn.Parameter]:
        for b in self._buckets:
            yield from b.params

    def view_of(self, param: torch.Tensor) -> torch.Tensor:
        """The gradient view of a covered param (KeyError naming the shape if not covered)."""
        try:
            bi, pos = self._index[id(param)]
        except KeyError:
            raise KeyError(
                f"FlatGradBuffer: param of shape {tuple(param.shape)} is not covered (frozen or not in the optimizer)"
            ) from None
        return self._buckets[bi].views[pos]

    def invalidate(self) -> None:
        """Mark the layout stale; the next ensure_bound()/zero_grad() rebuilds it."""
        self._dirty = True

    def rebuild(self) -> None:
        """(Re)collect trainable params from the optimizer, allocate the buffers, bind the views.

        Current gradient values are kept (copied into the new views); a None grad becomes zeros.
        """
        opt = self.optimizer
        order: Dict[Tuple[torch.device, torch.dtype], List[Tuple[int, torch.nn.Parameter]]] = {}
        seen = set()
        frozen = []
        for gi, group in enumerate(opt.param_groups):
            for p in group["params"]:
                if id(p) in seen:  # tied weights or a param listed twice: one segment
                    continue
                seen.add(id(p))
                if not p.requires_grad:
                    frozen.append(p)
                    continue
                if p.is_sparse or p.layout != torch.strided:
                    raise ValueError(
                        f"FlatGradBuffer: param group {gi} has a param with layout {p.layout}; only dense params "
                        "can have views into a flat buffer"
                    )
                if p.is_complex():
                    raise ValueError(f"FlatGradBuffer: param group {gi} has a complex param ({p.dtype}); not supported")
                if not _is_dense_non_overlapping(p):
                    raise ValueError(
                        f"FlatGradBuffer: param group {gi} has a param with overlapping or gapped strides "
                        f"{p.stride()} for shape {tuple(p.shape)}; its grad cannot be a view into a flat buffer"
                    )
                order.setdefault((p.device, p.dtype), []).append((gi, p))

        buckets = []
        index = {}
        for (device, dtype), entries in order.items():
            b = GradBucket(device, dtype)
            align = _align_elems(dtype)
            offsets, total = [], 0
            segs: List[List[int]] = []
            for gi, p in entries:
                offsets.append(total)
                if not segs or segs[-1][0] != gi:
                    segs.append([gi, total, total])
                total += -(-p.numel() // align) * align  # round the segment up: next one starts aligned
                segs[-1][2] = total
            # zeros: padding must stay zero (it is read by the stats pass and written by nothing)
            b.flat = torch.zeros(total, device=device, dtype=dtype)
            b.offsets = offsets
            b.group_segments = [tuple(s) for s in segs]
            bi = len(buckets)
            with torch.no_grad():
                for pos, ((gi, p), off) in enumerate(zip(entries, offsets)):
                    view = b.flat.as_strided(p.shape, p.stride(), off)
                    g = p.grad
                    if g is not None:
                        if g.shape != p.shape:
                            raise RuntimeError(
                                f"FlatGradBuffer: param group {gi} has a param of shape {tuple(p.shape)} whose grad has "
                                f"shape {tuple(g.shape)}"
                            )
                        view.copy_(g)
                    p.grad = view
                    b.params.append(p)
                    b.views.append(view)
                    index[id(p)] = (bi, pos)
            b._base_ptr = b.flat.data_ptr()
            if self._flat_params:
                b.param_flat = torch.zeros(total, device=device, dtype=dtype)
                with torch.no_grad():
                    for p, pv in zip(b.params, b.split(b.param_flat)):
                        pv.copy_(p)
                        p.data = pv  # same Parameter object, storage now in param_flat
                b._param_ptrs = [p.data_ptr() for p in b.params]
            buckets.append(b)
        # A param that left the buffer (now frozen) keeps its gradient value, in its own storage, so the
        # old buffer can be freed.
        with torch.no_grad():
            for b in self._buckets:
                for p, view in zip(b.params, b.views):
                    if id(p) not in index and p.grad is view:
                        p.grad = view.clone()
        self._buckets = buckets
        self._index = index
        self._frozen = frozen
        self._dirty = False
        self.rebuild_count += 1

    # ---- per step ----------------------------------------------------------------------------------------

    def ensure_bound(self) -> None:
        """Cheap check that every covered param's grad is still its view; repair or rebuild if not.

        Costs about three attribute reads per param, no device work (benchmarks/bench_amp.py "host" rows:
        10-35 us for 62-148 params on the shared 2-core machine). Repairs: grad None -> view zeroed and re-bound (the value None meant zero); grad replaced
        by another tensor -> copied into the view. Rebuilds on: invalidate()/add_param_group, a param moved
        or cast (model.to), requires_grad flipped either way.
        """
        if self._dirty:
            self.rebuild()
            return
        for b in self._buckets:
            # model.to()/.double() swap the storage under the same grad object (grad.data = ...)
            if b.views and (b.views[0].data_ptr() != b._base_ptr or b.params[0].dtype != b.dtype):
                self.rebuild()
                return
            # flat_params: model.to() or `p.data = ...` moved a param out of param_flat
            if b.param_flat is not None and list(map(_data_ptr, b.params)) != b._param_ptrs:
                self.rebuild()
                return
            grads = list(map(_get_grad, b.params))
            if not all(map(operator.is_, grads, b.views)):
                self.repair_count += 1
                if self._repair(b, grads):
                    return
            if not all(map(_get_requires_grad, b.params)):
                self.rebuild()
                return
        if self._frozen and any(map(_get_requires_grad, self._frozen)):
            self.rebuild()

    def _note_copy(self) -> None:
        self.copy_count += 1
        if self.copy_count >= 3 and not self._warned_copies:
            self._warned_copies = True
            rank_zero_warn(
                "FlatGradBuffer: param.grad was replaced by another tensor 3 times, and each time its values were "
                "copied back into the flat buffer. If something re-binds grads every step, e.g. DDP with "
                "gradient_as_bucket_view=True (its buckets are flat already), use the per-param grad list there "
                "instead of a FlatGradBuffer.",
                RuntimeWarning,
            )

    def _repair(self, b: GradBucket, grads: Sequence[Optional[torch.Tensor]]) -> bool:
        """Re-bind dropped views; True if a full rebuild was needed (and done)."""
        copied = False
        with torch.no_grad():
            for p, g, view in zip(b.params, grads, b.views):
                if g is view:
                    continue
                if p.device != b.device or p.dtype != b.dtype or p.shape != view.shape or p.stride() != view.stride():
                    self.rebuild()
                    return True
                if g is None:
                    view.zero_()
                else:
                    view.copy_(g)
                    copied = True
                p.grad = view
        if copied:
            self._note_copy()
        return False

    def zero_grad(self) -> None:
        """One memset per bucket; the views stay bound. Frozen params holding a grad get it set to None."""
        self.ensure_bound()
        for b in self._buckets:
            b.flat.zero_()
        for p in self._frozen:
            if p.grad is not None:
                p.grad = None

    # ---- optimizer patching ----------------------------------------------------------------------------

    def _patch(self, opt: torch.optim.Optimizer) -> None:
        me = weakref.ref(self)
        opt.zero_grad = _ZeroGradPatch(me, opt)
        opt.add_param_group = _AddParamGroupPatch(me, opt)
        self._patched = {"zero_grad": True, "add_param_group": True}

    def detach(self) -> None:
        """Undo the optimizer patches. Grads stay as they are (views keep the buffer alive until replaced)."""
        opt = self._optimizer_ref()
        if opt is not None:
            for name in self._patched:
                opt.__dict__.pop(name, None)
        self._patched = {}

    def __repr__(self):
        return f"FlatGradBuffer({self._buckets})"


class _OptimizerPatch:
    """An instance attribute shadowing one Optimizer method. Holds weak references only; a pickled or
    deep-copied optimizer gets the plain torch method back (the copy has no flat buffer)."""

    name = ""

    def __init__(self, flat_ref, opt):
        self._flat_ref = flat_ref
        self._opt_ref = weakref.ref(opt)

    def _orig(self):
        opt = self._opt_ref()
        return getattr(type(opt), self.name).__get__(opt)

    def __reduce__(self):
        opt = self._opt_ref()
        return (types.MethodType, (getattr(type(opt), self.name), opt))


class _ZeroGradPatch(_OptimizerPatch):
    name = "zero_grad"
    __doc__ = "Patched by fastlight FlatGradBuffer: one memset per flat gradient buffer; the views stay."

    def __call__(self, set_to_none: bool = True):
        # set_to_none is ignored on purpose: dropping the views would cost a rebind (and a fresh allocation
        # by autograd) at the next backward; zeros are what None means to accumulation.
        flat = self._flat_ref()
        if flat is None:
            return self._orig()(set_to_none)
        flat.zero_grad()


class _AddParamGroupPatch(_OptimizerPatch):
    name = "add_param_group"

    def __call__(self, param_group):
        self._orig()(param_group)
        flat = self._flat_ref()
        if flat is not None:
            flat.rebuild()
