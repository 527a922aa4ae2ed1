"""DeviceGradScaler against torch.amp.GradScaler + torch.optim (+ clip_grad_norm_/clip_grad_value_).

Non-finite gradients are injected at chosen steps; the scale sequence, the skipped steps and the final
weights must match torch's composition.
"""
import io

import pytest
import torch
from torch import nn

from fastlight.engine.flat_buffer import FlatGradBuffer
from fastlight.engine.scaler import DeviceGradScaler, StepInputs

BAD_STEPS = {2: float("inf"), 3: float("nan"), 9: float("-inf")}
N_STEPS = 16
GROWTH_INTERVAL = 3  # small, so growth happens within the test


def _model(seed=0, device="cpu"):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(7, 13), nn.Tanh(), nn.Linear(13, 3)).to(device)


def _data(n, seed=1, device="cpu"):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randn(8, 7, generator=g).to(device), torch.randn(8, 3, generator=g).to(device)) for _ in range(n)]


def _loss(m, batch):
    x, y = batch
    return ((m(x) - y) ** 2).mean()


def _optimizer(m, kind):
    if kind == "fused":
        return torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, fused=True)
    if kind == "foreach":
        return torch.optim.AdamW(m.parameters(), lr=1e-2, weight_decay=0.1, foreach=True)
    if kind == "sgd":
        return torch.optim.SGD(m.parameters(), lr=1e-2, momentum=0.9, foreach=False)
    if kind == "fastlight_adamw":
        return pytest.importorskip("fastlight.engine.optim").FusedAdamW(m.parameters(), lr=1e-2, weight_decay=0.1)
    if kind == "fastlight_sgd":
        return pytest.importorskip("fastlight.engine.optim").FusedSGD(m.parameters(), lr=1e-2, momentum=0.9)
    raise ValueError(kind)


def _inject(m, step):
    if step in BAD_STEPS:
        with torch.no_grad():
            m[0].weight.grad[1, 2] = BAD_STEPS[step]


def _run_torch(kind, clip, algo, accum, device="cpu"):
    m = _model(device=device)
    opt = _optimizer(m, kind)
    scaler = torch.amp.GradScaler(device, growth_interval=GROWTH_INTERVAL)
    data = _data(N_STEPS * accum, device=device)
    scales, steps = [], []
    for i in range(N_STEPS):
        for j in range(accum):
            scaler.scale(_loss(m, data[i * accum + j])).backward()
        _inject(m, i)
        if clip:
            scaler.unscale_(opt)
            if algo == "norm":
                torch.nn.utils.clip_grad_norm_(m.parameters(), clip, foreach=True)
            else:
                torch.nn.utils.clip_grad_value_(m.parameters(), clip)
        scaler.step(opt)
        scaler.update()
        opt.zero_grad()
        scales.append(scaler.get_scale())
        steps.append(_step_count(opt))
    return m, scales, steps


def _run_fastlight(kind, clip, algo, accum, flat_buffer=True, device="cpu"):
    m = _model(device=device)
    opt = _optimizer(m, kind)
    flat = FlatGradBuffer(opt) if flat_buffer else None
    scaler = DeviceGradScaler(device, growth_interval=GROWTH_INTERVAL)
    data = _data(N_STEPS * accum, device=device)
    scales, steps = [], []
    for i in range(N_STEPS):
        for j in range(accum):
            scaler.scale(_loss(m, data[i * accum + j])).backward()
        _inject(m, i)
        if flat is not None:
            flat.ensure_bound()
            grads = flat.buffers
        else:
            grads = [p.grad for p in m.parameters()]
        inputs = scaler.prepare_step(grads, clip_val=clip, clip_algorithm=algo, key=opt)
        scaler.step(opt, inputs, grads)
        scaler.update()
        opt.zero_grad()
        scales.append(scaler.get_scale())
        steps.append(_step_count(opt))
    return m, scales, steps


def _step_count(opt):
    st = opt.state[opt.param_groups[0]["params"][0]]
    if "step" in st:
        return float(st["step"])
    return float(st["momentum_buffer"].abs().sum()) if "momentum_buffer" in st else 0.0


@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("clip,algo", [(None, "norm"), (0.05, "norm"), (0.01, "value")])
@pytest.mark.parametrize("kind", ["fused", "foreach", "sgd"])
def test_matches_torch_grad_scaler_with_injected_non_finite_grads(kind, clip, algo, accum):
    ref, ref_scales, ref_steps = _run_torch(kind, clip, algo, accum)
    m, scales, steps = _run_fastlight(kind, clip, algo, accum)
    assert scales == ref_scales
    # backoff at each bad step, growth after GROWTH_INTERVAL clean ones
    assert scales[:7] == [2.0**16, 2.0**16, 2.0**15, 2.0**14, 2.0**14, 2.0**14, 2.0**15]
    assert steps == pytest.approx(ref_steps, rel=1e-6)
    for p, q in zip(ref.parameters(), m.parameters()):
        # without clip-by-norm both sides do the same float ops; the norm is summed in another order
        tol = dict(rtol=1e-5, atol=1e-6) if algo == "norm" and clip else dict(rtol=0, atol=0)
        torch.testing.assert_close(q, p, **tol)
        assert torch.isfinite(q).all()


@pytest.mark.parametrize("flat_buffer", [True, False])
@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("clip,algo", [(None, "norm"), (0.05, "norm"), (0.01, "value")])
@pytest.mark.parametrize("kind,ref_kind", [("fastlight_adamw", "foreach"), ("fastlight_sgd", "sgd")])
def test_fastlight_fused_optimizers_match_torch_grad_scaler_composition(kind, ref_kind, clip, algo, accum, flat_buffer):
    """The real pairing (skipped until fastlight.engine.optim is merged): multiplier and found_inf as step()
    keywords, against GradScaler + torch's optimizer (+ clip_grad_*_)."""
    pytest.importorskip("fastlight.engine.optim")
    ref, ref_scales, ref_steps = _run_torch(ref_kind, clip, algo, accum)
    m, scales, steps = _run_fastlight(kind, clip, algo, accum, flat_buffer=flat_buffer)
    assert scales == ref_scales
    assert steps == pytest.approx(ref_steps, rel=1e-5)
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_skipped_steps_leave_adamw_step_counter_untouched():
    _, _, steps = _run_fastlight("fused", None, "norm", 1)
    # steps 2, 3, 9 skipped
    assert steps[:5] == [1.0, 2.0, 2.0, 2.0, 3.0]
    assert steps[-1] == N_STEPS - len(BAD_STEPS)


def test_works_without_flat_buffer_on_a_list_of_grads():
    ref, ref_scales, _ = _run_torch("foreach", 0.05, "norm", 1)
    m, scales, _ = _run_fastlight("foreach", 0.05, "norm", 1, flat_buffer=False)
    assert scales == ref_scales
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


class _MultiplierAdamW(torch.optim.AdamW):
    """Stand-in for a fastlight fused optimizer: step(closure, *, grad_scale=MULTIPLIER, found_inf=)."""

    seen = {}

    @torch.no_grad()
    def step(self, closure=None, *, grad_scale=None, found_inf=None):
        type(self).seen = {"grad_scale": grad_scale.clone(), "found_inf": found_inf.clone()}
        assert not hasattr(self, "grad_scale")  # the attribute protocol is not used for these
        # torch's fused kernel divides by grad_scale: convert, to exercise the multiplier protocol end to end
        self.grad_scale, self.found_inf = 1.0 / grad_scale, found_inf
        try:
            return super().step(closure)
        finally:
            del self.grad_scale, self.found_inf


def test_fastlight_fused_protocol_gets_the_multiplier_as_keyword():
    m = _model()
    opt = _MultiplierAdamW(m.parameters(), lr=1e-2, fused=True)
    flat = FlatGradBuffer(opt)
    scaler = DeviceGradScaler("cpu")
    scaler.scale(_loss(m, _data(1)[0])).backward()
    inputs = scaler.prepare_step(flat.buffers, clip_val=1e-3, key=opt)
    scaler.step(opt, inputs, flat.buffers)
    seen = _MultiplierAdamW.seen
    assert torch.equal(seen["grad_scale"], inputs.grad_multiplier)
    assert float(seen["found_inf"]) == 0.0
    assert not hasattr(opt, "grad_scale") and not hasattr(opt, "found_inf")
    # the multiplier is inv_scale x clip coefficient of the unscaled norm
    ref = _model()
    _loss(ref, _data(1)[0]).backward()
    norm = torch.nn.utils.clip_grad_norm_(ref.parameters(), 1e-3)
    torch.testing.assert_close(inputs.grad_norm, norm, rtol=1e-6, atol=0)
    torch.testing.assert_close(inputs.grad_multiplier, (1e-3 / (norm + 1e-6)) / 2.0**16, rtol=1e-6, atol=0)
    # and the step it took equals torch's composition
    o_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, fused=True)
    o_ref.step()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-7)


def test_disabled_scaler_clips_without_skipping_like_bf16_mixed():
    """enabled=False (32-true, bf16-mixed): no scaling, a non-finite step is taken as torch takes it."""
    scaler = DeviceGradScaler("cpu", enabled=False)
    ref, m = _model(), _model()
    o_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, fused=True)
    o = torch.optim.AdamW(m.parameters(), lr=1e-2, fused=True)
    flat = FlatGradBuffer(o)
    for batch in _data(4):
        _loss(ref, batch).backward()
        torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
        o_ref.step()
        o_ref.zero_grad()
        loss = scaler.scale(_loss(m, batch))
        loss.backward()
        inputs = scaler.prepare_step(flat.buffers, clip_val=0.05, key=o)
        assert inputs.found_inf is None
        scaler.step(o, inputs, flat.buffers)
        scaler.update()
        o.zero_grad()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)
    assert scaler.state_dict() == {}
    assert scaler.prepare_step(flat.buffers, key=o) == StepInputs(None, None, None)


def test_unscale_then_prepare_does_not_unscale_twice():
    """unscale_ (for hooks that must see unscaled grads) then prepare_step: same result as torch."""
    ref, m = _model(), _model()
    o_ref = torch.optim.AdamW(ref.parameters(), lr=1e-2, foreach=True)
    o = torch.optim.AdamW(m.parameters(), lr=1e-2, foreach=True)
    flat = FlatGradBuffer(o)
    ts = torch.amp.GradScaler("cpu")
    fs = DeviceGradScaler("cpu")
    batch = _data(1)[0]
    ts.scale(_loss(ref, batch)).backward()
    ts.unscale_(o_ref)
    torch.nn.utils.clip_grad_norm_(ref.parameters(), 0.05)
    ts.step(o_ref)
    ts.update()
    fs.scale(_loss(m, batch)).backward()
    fs.unscale_(flat.buffers, key=o)
    for p, q in zip(ref.parameters(), m.parameters()):
        assert q.grad.abs().max() < 100  # unscaled now
    with pytest.raises(RuntimeError, match="already unscaled"):
        fs.unscale_(flat.buffers, key=o)
    inputs = fs.prepare_step(flat.buffers, clip_val=0.05, key=o)
    fs.step(o, inputs, flat.buffers)
    fs.update()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_state_dict_round_trips_with_torch_grad_scaler_both_ways():
    _, _, _ = _run_fastlight("fused", None, "norm", 1)
    fs = DeviceGradScaler("cpu", growth_interval=7)
    fs._lazy_init(torch.device("cpu"))
    fs._scale.fill_(1024.0)
    fs._growth_tracker.fill_(5)
    sd = fs.state_dict()
    assert sd == {"scale": 1024.0, "growth_factor": 2.0, "backoff_factor": 0.5, "growth_interval": 7, "_growth_tracker": 5}
    ts = torch.amp.GradScaler("cpu")
    ts.load_state_dict(sd)
    assert ts.state_dict() == sd
    ts2 = torch.amp.GradScaler("cpu", init_scale=8.0, growth_interval=11)
    ts2.scale(torch.ones(()))
    fs2 = DeviceGradScaler("cpu")
    fs2.load_state_dict(ts2.state_dict())
    assert fs2.state_dict() == ts2.state_dict()
    # through torch.save, as in a checkpoint
    buf = io.BytesIO()
    torch.save({"MixedPrecision": fs2.state_dict()}, buf)
    buf.seek(0)
    fs3 = DeviceGradScaler()  # lazy: no device yet
    fs3.load_state_dict(torch.load(buf)["MixedPrecision"])
    assert fs3.get_scale() == 8.0 and fs3.scale(torch.ones(())).item() == 8.0


def test_state_loads_from_and_into_lightnings_mixed_precision_plugin():
    pl_amp = pytest.importorskip("pytorch_lightning.plugins.precision.amp")
    plugin = pl_amp.MixedPrecision("16-mixed", "cpu")
    # the checkpoint key Lightning uses for the scaler state is the plugin's class qualname
    assert type(plugin).__qualname__ == "MixedPrecision"
    plugin.scaler.scale(torch.ones(()))
    plugin.scaler.update(new_scale=512.0)
    fs = DeviceGradScaler("cpu")
    fs.load_state_dict(plugin.state_dict())
    assert fs.get_scale() == 512.0
    fs.update(new_scale=2.0**10)
    plugin2 = pl_amp.MixedPrecision("16-mixed", "cpu")
    plugin2.load_state_dict(fs.state_dict())
    assert plugin2.scaler.get_scale() == 1024.0


def test_bad_arguments_and_misuse_raise_clear_errors():
    with pytest.raises(ValueError, match="growth_factor"):
        DeviceGradScaler(growth_factor=1.0)
    with pytest.raises(ValueError, match="backoff_factor"):
        DeviceGradScaler(backoff_factor=1.0)
    with pytest.raises(ValueError, match="growth_interval"):
        DeviceGradScaler(growth_interval=0)
    fs = DeviceGradScaler("cpu")
    with pytest.raises(RuntimeError, match="no prepare_step"):
        fs.update()
    with pytest.raises(RuntimeError, match="empty"):
        fs.load_state_dict({})
    with pytest.raises(KeyError, match="growth_interval"):
        fs.load_state_dict({"scale": 1.0, "growth_factor": 2.0, "backoff_factor": 0.5, "_growth_tracker": 0})
    g = [torch.ones(3)]
    fs.prepare_step(g, key="opt")
    with pytest.raises(RuntimeError, match="twice"):
        fs.prepare_step(g, key="opt")
    with pytest.raises(ValueError, match="clip_algorithm|is not a valid"):
        fs.prepare_step(g, clip_val=1.0, clip_algorithm="max")
    with pytest.raises(ValueError, match="no gradients"):
        fs.prepare_step([None], key="other")


def test_multiple_devices_is_not_needed_but_two_optimizers_share_one_update():
    """Two optimizers prepared in one iteration: one update backs off if either saw inf (as torch)."""
    fs = DeviceGradScaler("cpu", growth_interval=1)
    a, b = [torch.ones(4)], [torch.tensor([1.0, float("inf")])]
    fs.prepare_step(a, key="a")
    fs.prepare_step(b, key="b")
    fs.update()
    assert fs.get_scale() == 2.0**15
    fs.prepare_step(a, key="a")
    fs.prepare_step([torch.ones(2)], key="b")
    fs.update()
    assert fs.get_scale() == 2.0**16


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("optimizer", ["torch_fused", "fastlight_fused"])
def test_optimizer_side_step_does_not_sync_on_cuda(optimizer):
    torch.manual_seed(0)
    m = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 8)).cuda()
    if optimizer == "torch_fused":
        opt = torch.optim.AdamW(m.parameters(), lr=1e-3, fused=True)
    else:
        opt = pytest.importorskip("fastlight.engine.optim").FusedAdamW(m.parameters(), lr=1e-3)
    flat = FlatGradBuffer(opt)
    scaler = DeviceGradScaler("cuda")
    x, y = torch.randn(32, 64, device="cuda"), torch.randn(32, 8, device="cuda")
    for clip, algo in ((None, "norm"), (1.0, "norm"), (0.1, "value")):
        for _ in range(3):  # warm-up: allocations, lazy init
            with torch.autocast("cuda", dtype=torch.float16):
                loss = ((m(x) - y) ** 2).mean()
            scaler.scale(loss).backward()
            flat.ensure_bound()
            scaler.step(opt, scaler.prepare_step(flat.buffers, clip, algo, key=opt), flat.buffers)
            scaler.update()
            opt.zero_grad()
        torch.cuda.synchronize()
        torch.cuda.set_sync_debug_mode("error")
        try:
            for _ in range(20):
                with torch.autocast("cuda", dtype=torch.float16):
                    loss = ((m(x) - y) ** 2).mean()
                scaler.scale(loss).backward()
                flat.ensure_bound()
                inputs = scaler.prepare_step(flat.buffers, clip, algo, key=opt)
                scaler.step(opt, inputs, flat.buffers)
                scaler.update()
                opt.zero_grad()
        finally:
            torch.cuda.set_sync_debug_mode("default")
    assert all(torch.isfinite(p).all() for p in m.parameters())
