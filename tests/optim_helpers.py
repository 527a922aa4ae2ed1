"""Shared helpers of the fused-optimizer tests: ulp distance and a lock-step driver against torch.optim."""
from typing import Callable, Dict, List, Sequence

import torch

# Sizes that are not multiples of 4 or 16; MULTI_CHUNK_SIZES adds one that spans two 32768-element CPU chunks
# (the OpenMP region then has work for two threads; kept out of the large test grids, which it slows down).
SIZES = [(1,), (3,), (5,), (17,), (7, 13), (1031,), (4099,)]
MULTI_CHUNK_SIZES = SIZES + [(33001,)]


_MANTISSA_BITS = {torch.float32: 23, torch.float64: 52, torch.float16: 10, torch.bfloat16: 7}
# Errors are measured in ulps of max(|reference|, FLOOR * max|reference over the tensor|): near zero, where an
# element is the small difference of two large terms (lerp, param + update), the raw ulp count of any two
# correct implementations is meaningless (a 1e-9 difference on a 1e-6 value is thousands of ulps).
FLOOR = 2.0**-6


def ulp_distance(ref: torch.Tensor, x: torch.Tensor, floor: float = FLOOR) -> float:
    """Largest |x - ref| in ulps (of ref's dtype) of max(|ref|, floor * max|ref|); 0 for empty tensors."""
    assert ref.dtype == x.dtype and ref.shape == x.shape, (ref.dtype, x.dtype, ref.shape, x.shape)
    if ref.numel() == 0:
        return 0.0
    r = ref.detach().to(torch.float64)
    d = (x.detach().to(torch.float64) - r).abs()
    if torch.isnan(r).any() or torch.isnan(d).any():
        return float("inf") if not torch.equal(torch.isnan(r), torch.isnan(x.detach().to(torch.float64))) else 0.0
    mag = torch.clamp(r.abs(), min=floor * float(r.abs().max()))
    mag = torch.where(mag > 0, mag, torch.ones_like(mag))
    _, exp = torch.frexp(mag)
    ulp = torch.ldexp(torch.ones_like(mag), exp.to(torch.float64) - 1 - _MANTISSA_BITS[ref.dtype])
    return float((d / ulp).max())


def make_params(sizes: Sequence[tuple], dtype: torch.dtype, seed: int = 0) -> List[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(s, generator=g).to(dtype).requires_grad_() for s in sizes]


def clone_params(params: List[torch.Tensor]) -> List[torch.Tensor]:
    return [p.detach().clone().requires_grad_(p.requires_grad) for p in params]


def run_lockstep(
    make_ref: Callable[[List[torch.Tensor]], torch.optim.Optimizer],
    make_fused: Callable[[List[torch.Tensor]], torch.optim.Optimizer],
    params: List[torch.Tensor],
    steps: int = 60,
    grad_none: Callable[[int, int], bool] = lambda step, i: False,
    seed: int = 1,
    schedulers: Callable = None,
) -> Dict[str, object]:
    """Steps a torch optimizer and a fused one on identical copies with identical gradients.

    Returns both param lists and optimizers. grad_none(step, i) leaves param i without a gradient that step;
    params with requires_grad=False never get one.
    """
    ref_params, fused_params = clone_params(params), clone_params(params)
    ref, fused = make_ref(ref_params), make_fused(fused_params)
    scheds = schedulers(ref, fused) if schedulers else ()
    gen = torch.Generator().manual_seed(seed)
    for step in range(steps):
        for i, (rp, fp) in enumerate(zip(ref_params, fused_params)):
            if not rp.requires_grad or grad_none(step, i):
                rp.grad = None
                fp.grad = None
                continue
            g = torch.randn(rp.shape, generator=gen).to(rp.dtype)
            rp.grad = g.clone()
            fp.grad = g.clone()
        ref.step()
        fused.step()
        for s in scheds:
            s.step()
    return {"ref_params": ref_params, "fused_params": fused_params, "ref": ref, "fused": fused}


def max_ulp(xs: List[torch.Tensor], ys: List[torch.Tensor]) -> int:
    return max(ulp_distance(x, y) for x, y in zip(xs, ys))


def state_max_ulp(ref: torch.optim.Optimizer, fused: torch.optim.Optimizer, keys: Sequence[str]) -> int:
    worst = 0
    rs, fs = ref.state_dict()["state"], fused.state_dict()["state"]
    assert rs.keys() == fs.keys()
    for idx in rs:
        for k in keys:
            if k in rs[idx] and rs[idx][k] is not None:
                worst = max(worst, ulp_distance(rs[idx][k], fs[idx][k].to(rs[idx][k].device)))
    return worst
