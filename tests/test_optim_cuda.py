"""Fused optimizers on CUDA: same results as the CPU kernels, no host sync, found_inf on the device.

Skipped without a GPU or without the CUDA kernels in the build.
"""
import pytest
import torch

from fastlight import ops
from fastlight.optim import FusedAdam, FusedAdamW, FusedSGD
from optim_helpers import MULTI_CHUNK_SIZES, SIZES, clone_params, make_params, max_ulp

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _native_cuda():
    if ops.backend("cuda") != "native":
        pytest.skip(f"no native CUDA kernels: {ops.backend_reason('cuda')}")


def _grads(params, seed, device):
    gen = torch.Generator().manual_seed(seed)
    return [torch.randn(p.shape, generator=gen).to(p.dtype).to(device) for p in params]


CASES = [
    (FusedAdamW, dict(lr=1e-2, weight_decay=0.1, amsgrad=True)),
    (FusedAdam, dict(lr=1e-2, weight_decay=0.1, maximize=True)),
    (FusedSGD, dict(lr=1e-2, momentum=0.9, nesterov=True, weight_decay=0.01)),
    (FusedSGD, dict(lr=1e-2, momentum=0.9, dampening=0.1)),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
@pytest.mark.parametrize("cls,kw", CASES)
def test_cuda_matches_cpu_kernels(cls, kw, dtype):
    base = make_params(MULTI_CHUNK_SIZES + [(70001,), (0,)], dtype)  # 70001: two 64K CUDA chunks, odd tail
    cpu = clone_params(base)
    gpu = [p.detach().cuda().requires_grad_() for p in base]
    a, b = cls(cpu, **kw), cls(gpu, **kw)
    for s in range(50):
        gs = _grads(base, s, "cpu")
        for p, q, g in zip(cpu, gpu, gs):
            p.grad = g
            q.grad = g.cuda()
        a.step()
        b.step()
    # Same roundings op by op; only pow() in the double bias corrections differs: CUDA's double pow is within
    # 2 ulp, glibc's correctly rounded. The cast to fp32/16 absorbs that; fp64 params carry it into every update
    # (seen on an H200: 6-10 ulp after these 50 steps, i.e. ~1e-15 relative). SGD has no pow: exact to 2 ulp.
    bound = 64 if dtype == torch.float64 and cls is not FusedSGD else 2
    assert max_ulp([p.detach() for p in cpu], [q.detach().cpu() for q in gpu]) <= bound


def test_cuda_matches_torch_fused_adamw():
    base = make_params(SIZES, torch.float32)
    ours = [p.detach().cuda().requires_grad_() for p in base]
    ref = [p.detach().cuda().requires_grad_() for p in base]
    a = FusedAdamW(ours, lr=1e-3, weight_decay=0.01)
    b = torch.optim.AdamW(ref, lr=1e-3, weight_decay=0.01, fused=True)
    for s in range(50):
        for p, q, g in zip(ours, ref, _grads(base, s, "cuda")):
            p.grad, q.grad = g.clone(), g.clone()
        a.step()
        b.step()
    for p, q in zip(ours, ref):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)


def test_cuda_step_does_not_sync_and_found_inf_skips_on_device():
    params = [torch.randn(n, device="cuda", requires_grad=True) for n in (5, 1000, 70000)]
    opt = FusedAdamW(params, lr=torch.tensor(1e-3, device="cuda"))
    for p in params:
        p.grad = torch.randn_like(p)
    opt.step()  # state creation may allocate; later steps must not sync
    torch.cuda.synchronize()
    before = [p.detach().clone() for p in params]
    steps_before = [opt.state[p]["step"].clone() for p in params]
    found = torch.ones((), device="cuda")
    scale = torch.full((), 0.5, device="cuda")
    torch.cuda.set_sync_debug_mode("error")
    try:
        opt.step(grad_scale=scale, found_inf=found)
        skipped = [p.detach().clone() for p in params]
        found.zero_()
        opt.step(grad_scale=scale, found_inf=found)
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert all(torch.equal(a, b) for a, b in zip(before, skipped))
    assert all(float(opt.state[p]["step"]) == float(s) + 1 for p, s in zip(params, steps_before))
    assert not all(torch.equal(a, p) for a, p in zip(before, params))


def test_cuda_state_dict_loads_from_torch_adamw_with_cpu_steps():
    base = make_params(SIZES, torch.float32)
    ref = [p.detach().cuda().requires_grad_() for p in base]
    torch_opt = torch.optim.AdamW(ref, foreach=False)  # keeps step on the CPU
    for p, g in zip(ref, _grads(base, 0, "cuda")):
        p.grad = g
    torch_opt.step()
    ours = [p.detach().clone().requires_grad_() for p in ref]
    fused = FusedAdamW(ours)
    import copy

    fused.load_state_dict(copy.deepcopy(torch_opt.state_dict()))
    for p, q, g in zip(ref, ours, _grads(base, 1, "cuda")):
        p.grad, q.grad = g.clone(), g.clone()
    torch_opt.step()
    fused.step()
    assert all(fused.state[p]["step"].device.type == "cuda" for p in ours)
    for p, q in zip(ref, ours):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
