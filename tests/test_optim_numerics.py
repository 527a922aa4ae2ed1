"""Fused Adam/AdamW/SGD against torch.optim over 60 steps, in ulps.

float32/float64 params: against torch's single-tensor (for-loop) implementation, whose order of operations
(and single roundings: fmadd in add-with-alpha, lerp and addcmul) the kernels follow. One step of a
float32 tensor with at least 16 elements still differs by an ulp here and there: torch's float sqrt goes
through MKL's vsSqrt, which is not correctly rounded (about 1 element in 5 is 1 ulp off); the kernels use
IEEE sqrt. Smaller tensors (torch's scalar path) match bit for bit. Errors are in ulps of
max(|x|, max|x| / 64) (see optim_helpers.ulp_distance).
float16/bfloat16 params: against torch's fused=True, which like ours computes in float32 and keeps the state
in the param's dtype (torch's for-loop would round every intermediate to 16 bits).
"""
import itertools

import pytest
import torch

from fastlight import ops
from fastlight.optim import FusedAdam, FusedAdamW, FusedSGD
from optim_helpers import MULTI_CHUNK_SIZES, SIZES, make_params, max_ulp, run_lockstep, state_max_ulp

STEPS = 60
# Max ulp distance allowed after STEPS steps (fp32/fp64 vs torch's for-loop; 16-bit vs fused=True): params,
# and states (exp_avg etc. are differences of nearby numbers, so a param's ulp spreads further there).
ULP_BOUND = {torch.float32: 32, torch.float64: 32, torch.bfloat16: 1, torch.float16: 1}
STATE_ULP_BOUND = 64

pytestmark = pytest.mark.skipif(ops.backend("cpu") != "native", reason="native CPU kernels not built")


def _ref_kwargs(dtype):
    return {"foreach": False} if dtype in (torch.float32, torch.float64) else {"fused": True}


def _params(dtype, sizes=SIZES):
    # an empty param and a frozen one ride along in every run
    ps = make_params(sizes + [(0,), (9,)], dtype)
    ps[-1].requires_grad_(False)  # frozen
    return ps


def _grad_none(step, i):
    return i == 2 and step % 3 == 1  # param 2 has no gradient on every third step


ADAM_CASES = list(itertools.product([FusedAdam, FusedAdamW], [0.0, 0.1], [False, True], [False, True]))


@pytest.mark.parametrize("fused_cls,weight_decay,amsgrad,maximize", ADAM_CASES)
def test_adam_matches_torch_for_loop_fp32_over_60_steps(fused_cls, weight_decay, amsgrad, maximize):
    torch_cls = torch.optim.AdamW if fused_cls is FusedAdamW else torch.optim.Adam
    kw = dict(lr=1e-2, betas=(0.9, 0.99), weight_decay=weight_decay, amsgrad=amsgrad, maximize=maximize)
    out = run_lockstep(lambda ps: torch_cls(ps, foreach=False, **kw), lambda ps: fused_cls(ps, **kw),
                       _params(torch.float32), steps=STEPS, grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]
    keys = ["exp_avg", "exp_avg_sq"] + (["max_exp_avg_sq"] if amsgrad else [])
    assert state_max_ulp(out["ref"], out["fused"], keys) <= STATE_ULP_BOUND
    for idx, s in out["ref"].state_dict()["state"].items():
        assert float(s["step"]) == float(out["fused"].state_dict()["state"][idx]["step"])


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
@pytest.mark.parametrize("fused_cls", [FusedAdamW, FusedAdam])
def test_adam_dtypes_match_torch(dtype, fused_cls):
    torch_cls = torch.optim.AdamW if fused_cls is FusedAdamW else torch.optim.Adam
    kw = dict(lr=1e-3, weight_decay=0.05, amsgrad=True)
    out = run_lockstep(lambda ps: torch_cls(ps, **_ref_kwargs(dtype), **kw), lambda ps: fused_cls(ps, **kw),
                       _params(dtype, MULTI_CHUNK_SIZES), steps=STEPS, grad_none=_grad_none)
    assert all(p.dtype == dtype for p in out["fused_params"])
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[dtype]
    for s in out["fused"].state.values():
        assert s["exp_avg"].dtype == dtype and s["step"].dtype == torch.float32


def test_adamw_lr_as_tensor_matches_float_lr():
    # torch reads a tensor lr as a Python float (.item()); a float64 tensor carries the same value.
    kw = dict(weight_decay=0.1)
    out = run_lockstep(lambda ps: torch.optim.AdamW(ps, lr=0.01, foreach=False, **kw),
                       lambda ps: FusedAdamW(ps, lr=torch.tensor(0.01, dtype=torch.float64), **kw),
                       _params(torch.float32), steps=STEPS, grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]
    # and a float32 tensor lr, as torch.tensor(0.01) gives: the same value on both sides
    lr32 = torch.tensor(0.01)
    out = run_lockstep(lambda ps: torch.optim.AdamW(ps, lr=lr32.clone(), foreach=False, **kw),
                       lambda ps: FusedAdamW(ps, lr=lr32.clone(), **kw), _params(torch.float32), steps=STEPS)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]


def test_two_param_groups_with_different_lr():
    def groups(ps):
        return [{"params": ps[:4], "lr": 1e-2}, {"params": ps[4:], "lr": 3e-3, "weight_decay": 0.0}]

    out = run_lockstep(lambda ps: torch.optim.AdamW(groups(ps), foreach=False, weight_decay=0.1),
                       lambda ps: FusedAdamW(groups(ps), weight_decay=0.1), _params(torch.float32),
                       steps=STEPS, grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]


def test_frozen_and_gradless_params_get_no_state_and_do_not_move():
    params = _params(torch.float32)
    out = run_lockstep(lambda ps: torch.optim.AdamW(ps, foreach=False), lambda ps: FusedAdamW(ps), params,
                       steps=10, grad_none=_grad_none)
    frozen = out["fused_params"][-1]
    assert frozen not in out["fused"].state
    assert torch.equal(frozen, params[-1])
    # param 2 skipped steps 1, 4, 7: its counter is 10 - 3
    assert float(out["fused"].state[out["fused_params"][2]]["step"]) == 7.0


SGD_CASES = [
    dict(momentum=0.0),
    dict(momentum=0.9),
    dict(momentum=0.9, nesterov=True),
    dict(momentum=0.9, dampening=0.1),
    dict(momentum=0.9, weight_decay=0.01),
    dict(momentum=0.8, weight_decay=0.01, maximize=True),
    dict(momentum=0.0, weight_decay=0.01, maximize=True),
]


@pytest.mark.parametrize("kw", SGD_CASES, ids=lambda kw: ",".join(f"{k}={v}" for k, v in kw.items()))
def test_sgd_matches_torch_for_loop_fp32_over_60_steps(kw):
    out = run_lockstep(lambda ps: torch.optim.SGD(ps, lr=0.01, foreach=False, **kw),
                       lambda ps: FusedSGD(ps, lr=0.01, **kw), _params(torch.float32), steps=STEPS,
                       grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]
    if kw["momentum"]:
        assert state_max_ulp(out["ref"], out["fused"], ["momentum_buffer"]) <= STATE_ULP_BOUND


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16, torch.float16])
def test_sgd_dtypes_match_torch(dtype):
    kw = dict(lr=0.01, momentum=0.9, weight_decay=0.01, nesterov=True)
    out = run_lockstep(lambda ps: torch.optim.SGD(ps, **_ref_kwargs(dtype), **kw), lambda ps: FusedSGD(ps, **kw),
                       _params(dtype, MULTI_CHUNK_SIZES), steps=STEPS, grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[dtype]


def test_sgd_lr_tensor_and_param_groups():
    def groups(ps):
        return [{"params": ps[:3]}, {"params": ps[3:], "lr": torch.tensor(0.003, dtype=torch.float64)}]

    out = run_lockstep(lambda ps: torch.optim.SGD(groups(ps), lr=0.01, momentum=0.9, foreach=False),
                       lambda ps: FusedSGD(groups(ps), lr=0.01, momentum=0.9), _params(torch.float32),
                       steps=STEPS, grad_none=_grad_none)
    assert max_ulp(out["ref_params"], out["fused_params"]) <= ULP_BOUND[torch.float32]


@pytest.fixture
def restore_isa():
    yield
    ops.cpu_optim_set_isa("")


def _isa_run(isa):
    assert ops.cpu_optim_set_isa(isa) == isa
    torch.manual_seed(0)
    out = []
    for dt in (torch.float32, torch.float64, torch.bfloat16, torch.float16):
        ps = [torch.randn(n).to(dt).requires_grad_() for n in (1, 17, 1000)]
        for cls, kw in ((FusedAdamW, dict(amsgrad=True)), (FusedAdam, dict(weight_decay=0.1)),
                        (FusedSGD, dict(lr=0.1, momentum=0.9, nesterov=True))):
            o = cls(ps, **kw)
            for _ in range(5):
                for p in ps:
                    p.grad = torch.randn(p.shape).to(dt)
                o.step()
        out += [p.detach().clone() for p in ps]
    return out


@pytest.mark.parametrize("isa", ["avx2", "avx512"])
def test_every_isa_variant_gives_the_same_bits_as_baseline(isa, restore_isa):
    """The run-time ISA choice must not change results (no FMA contraction in any variant)."""
    ops.cpu_optim_set_isa("")
    best = ops.cpu_optim_isa()
    if isa == "avx512" and best != "avx512" or isa == "avx2" and best == "baseline":
        pytest.skip(f"this CPU has no {isa}")
    baseline = _isa_run("baseline")
    vectorized = _isa_run(isa)
    for a, b in zip(baseline, vectorized):
        assert torch.equal(a, b)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_pure_torch_references_agree_with_native_kernels(dtype):
    """fastlight.ops.reference is the fallback when the extension is missing: same results within rounding."""
    from fastlight.ops import reference

    gen = torch.Generator().manual_seed(0)
    shapes = [(5,), (0,), (1031,)]
    native = [torch.randn(s, generator=gen).to(dtype) for s in shapes]
    ref = [p.clone() for p in native]
    states = {k: ([torch.zeros_like(p) for p in native], [torch.zeros_like(p) for p in native])
              for k in ("m", "v", "vmax", "buf")}
    steps = ([torch.zeros(()) for _ in shapes], [torch.zeros(()) for _ in shapes])
    lr = torch.tensor(1e-2, dtype=torch.float64)
    scale = torch.tensor(0.5)
    for s in range(20):
        grads = [torch.randn(p.shape, generator=gen).to(dtype) for p in native]
        for i, (impl, ps) in enumerate(((ops.adam_step_, native), (reference.adam_step_, ref))):
            impl(ps, grads, states["m"][i], states["v"][i], states["vmax"][i], steps[i], lr, 0.9, 0.99, 0.1, 1e-8,
                 True, s % 2 == 0, True, scale, torch.tensor(float(s == 7)))
        for i, (impl, ps) in enumerate(((ops.sgd_step_, native), (reference.sgd_step_, ref))):
            impl(ps, grads, states["buf"][i], lr, 0.01, 0.9, 0.1, False, False, s == 0, scale, None)
    tol = dict(rtol=1e-5, atol=1e-6) if dtype == torch.float32 else dict(rtol=1e-2, atol=1e-2)
    for a, b in zip(native, ref):
        torch.testing.assert_close(a, b, **tol)
    assert [float(t) for t in steps[0]] == [float(t) for t in steps[1]] == [19.0] * 3  # step 7 was skipped
