"""The engine on a CUDA device: the native CUDA kernels under the scaler, the flat buffers and the Trainer.

The CPU suites check each piece against torch on the CPU; these run the same comparisons on the GPU, where the
kernels are csrc/cuda/*.cu (skipped without a device or without the native CUDA build).
"""

import pytest
import torch
from torch import nn

import fastlight.ops as ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]

from _parity_helpers import build, quiet_warnings, trainer_kwargs  # noqa: E402
from fastlight.engine.flat_buffer import FlatGradBuffer  # noqa: E402
from fastlight.engine.optim import FusedAdamW, FusedSGD  # noqa: E402
from fastlight.engine.scaler import DeviceGradScaler  # noqa: E402
from test_engine_scaler import BAD_STEPS, N_STEPS, _run_fastlight, _run_torch  # noqa: E402

quiet_warnings()


@pytest.fixture(autouse=True)
def _native_cuda():
    if ops.backend("cuda") != "native":
        pytest.skip(f"no native CUDA kernels: {ops.backend_reason('cuda')}")


@pytest.mark.parametrize("accum", [1, 2])
@pytest.mark.parametrize("clip,algo", [(None, "norm"), (0.05, "norm"), (0.01, "value")])
@pytest.mark.parametrize("kind,ref_kind", [("fastlight_adamw", "fused"), ("fastlight_sgd", "sgd")])
@pytest.mark.parametrize("flat_buffer", [True, False])
def test_cuda_scaler_and_fused_step_match_torch_grad_scaler_with_injected_non_finite(kind, ref_kind, clip, algo,
                                                                                     accum, flat_buffer):
    ref, ref_scales, ref_steps = _run_torch(ref_kind, clip, algo, accum, device="cuda")
    m, scales, steps = _run_fastlight(kind, clip, algo, accum, flat_buffer=flat_buffer, device="cuda")
    assert scales == ref_scales
    assert scales.count(scales[0]) < len(scales), "the injected inf/nan must move the scale"
    assert steps == pytest.approx(ref_steps, rel=1e-5)
    for p, q in zip(ref.parameters(), m.parameters()):
        assert q.device.type == "cuda" and torch.isfinite(q).all()
        torch.testing.assert_close(q, p, rtol=1e-5, atol=1e-6)


def test_cuda_skipped_steps_leave_the_step_counter_on_the_device_untouched():
    _, _, steps = _run_fastlight("fastlight_adamw", 0.05, "norm", 1, device="cuda")
    assert steps[-1] == N_STEPS - len(BAD_STEPS)


def _mlp(device):
    torch.manual_seed(0)
    # odd sizes so the flat segments need padding
    return nn.Sequential(nn.Linear(5, 7), nn.Tanh(), nn.Linear(7, 3)).to(device)


@pytest.mark.parametrize("make_opt", [lambda ps: FusedAdamW(ps, lr=1e-2, weight_decay=0.1),
                                      lambda ps: FusedSGD(ps, lr=1e-2, momentum=0.9)], ids=["adamw", "sgd"])
def test_cuda_flat_buffer_training_is_bit_identical_and_grads_share_one_storage(make_opt):
    ref, m = _mlp("cuda"), _mlp("cuda")
    opt_ref, opt = make_opt(list(ref.parameters())), make_opt(list(m.parameters()))
    flat = FlatGradBuffer(opt)
    for step in range(6):
        for model, o in ((ref, opt_ref), (m, opt)):
            o.zero_grad(set_to_none=True)
            for micro in range(2):  # accumulation over two micro-batches
                gg = torch.Generator().manual_seed(100 * step + micro)
                x, y = torch.randn(4, 5, generator=gg).cuda(), torch.randn(4, 3, generator=gg).cuda()
                ((model(x) - y) ** 2).mean().backward()
            if o is opt:
                flat.ensure_bound()
                storages = {p.grad.untyped_storage().data_ptr() for p in m.parameters()}
                assert storages == {flat.buckets[0].flat.untyped_storage().data_ptr()}
            o.step()
    for p, q in zip(ref.parameters(), m.parameters()):
        torch.testing.assert_close(q, p, rtol=0, atol=0)


def _fit(pl, tmp_path, model_kw, **trainer_kw):
    torch.manual_seed(1234)
    model = build(pl)(**model_kw)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, accelerator="cuda", **trainer_kw))
    trainer.fit(model)
    return model.cpu(), trainer


@pytest.mark.parametrize("flat_grads", [True, "auto"])
@pytest.mark.parametrize("precision", ["32-true", "16-mixed", "bf16-mixed"])
@pytest.mark.parametrize("optimizer,clip", [("adamw", None), ("adamw", 0.5), ("sgd", 0.5)])
def test_cuda_trainer_fused_matches_lightning(precision, optimizer, clip, flat_grads, tmp_path):
    """fastlight's fused engine on CUDA (fused optimizer, device scaler for 16-mixed, clipping folded into the
    step; with and without flat grads) against pytorch_lightning on the same user code and GPU: same steps,
    weights within tolerance."""
    pl_ref = pytest.importorskip("pytorch_lightning")
    import fastlight as fl

    model_kw = dict(optimizer=optimizer, lr=0.01, hidden=32)
    trainer_kw = dict(max_epochs=2, precision=precision, gradient_clip_val=clip)
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, **trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, flat_grads=flat_grads, **trainer_kw)
    assert trainer.global_step == ref_trainer.global_step > 0
    engine = trainer.precision_plugin._engine
    assert bool(engine.flat_list) == (flat_grads is True)  # "auto" is off on CUDA too
    if precision == "16-mixed":
        assert isinstance(trainer.scaler, DeviceGradScaler)
        assert trainer.scaler.get_scale() == ref_trainer.precision_plugin.scaler.get_scale()
    # fp16/bf16 autocast makes both sides round the same forward/backward; only the optimizer side differs
    tol = dict(rtol=1e-5, atol=1e-6) if precision == "32-true" else dict(rtol=1e-4, atol=1e-5)
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        torch.testing.assert_close(b, a, **tol, msg=lambda msg: f"{k}: {msg}")
