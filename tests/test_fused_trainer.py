"""Trainer(fused=True): the engine wired into the loop, checked against pytorch_lightning running the same user
code (fp32 tolerance, since the fused kernels and the one-pass clipping round differently from torch)."""
import logging

import pytest

import fastlight.ops as fastlight_ops
import torch
from torch import nn

pl_ref = pytest.importorskip("pytorch_lightning")
# The Trainer swaps in fused optimizers only when the native kernels are loaded (not with FASTLIGHT_KERNELS=torch).
pytestmark = pytest.mark.skipif(fastlight_ops.backend("cpu") != "native",
                                reason="fused optimizers are swapped in only with the native kernels")

import fastlight as fl  # noqa: E402
from _parity_helpers import build, build_manual, quiet_warnings, trainer_kwargs  # noqa: E402
from fastlight.engine.optim import FusedAdam, FusedAdamW, FusedSGD  # noqa: E402
from fastlight.engine.scaler import DeviceGradScaler  # noqa: E402
from fastlight.trainer.config import ConfigError  # noqa: E402
from fastlight.trainer.precision import MixedPrecision  # noqa: E402
from test_parity_weights import CASES  # noqa: E402

quiet_warnings()
RTOL, ATOL = 1e-5, 1e-6


def _fit(pl, tmp_path, model_kw, trainer_kw, cls=None, **extra):
    torch.manual_seed(1234)
    model = (cls or build(pl))(**model_kw)
    kw = trainer_kwargs(tmp_path, **trainer_kw)
    kw.update(extra)
    trainer = pl.Trainer(**kw)
    trainer.fit(model)
    return model, trainer


def _assert_close_weights(ref, got, what=""):
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL, msg=lambda m: f"{what} {k}: {m}")


@pytest.mark.parametrize("case", sorted(CASES))
def test_final_weights_match_lightning_with_fused_engine(case, tmp_path):
    model_kw, trainer_kw = CASES[case]
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, fused=True)
    assert trainer.global_step == ref_trainer.global_step
    _assert_close_weights(ref, got, case)
    ref_opt, got_opt = ref_trainer.optimizers[0], trainer.optimizers[0]
    assert isinstance(got_opt, (FusedSGD, FusedAdam, FusedAdamW))
    assert got_opt.param_groups[0]["lr"] == pytest.approx(ref_opt.param_groups[0]["lr"], rel=1e-12)
    for p_ref, p_got in zip(ref.parameters(), got.parameters()):
        for key, v in ref_opt.state[p_ref].items():
            torch.testing.assert_close(torch.as_tensor(got_opt.state[p_got][key]).float(),
                                       torch.as_tensor(v).float(), rtol=RTOL, atol=ATOL)


def test_fusing_keeps_the_users_optimizer_object_groups_and_schedulers(tmp_path):
    seen = {}

    class M(build(fl)):
        def configure_optimizers(self):
            opt = torch.optim.AdamW([{"params": self.net[0].parameters(), "lr": 0.01, "tag": "first"},
                                     {"params": self.net[2].parameters(), "weight_decay": 0.3}], lr=0.02)
            seen["original"] = opt
            return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5),
                                                       "interval": "step"}}

        def on_train_start(self):
            seen["module_optimizer"] = self.optimizers().optimizer

    _, trainer = _fit(fl, tmp_path, {}, dict(max_steps=2), cls=M)
    opt = trainer.optimizers[0]
    assert isinstance(opt, FusedAdamW) and isinstance(opt, torch.optim.AdamW)
    assert seen["module_optimizer"] is opt and seen["original"] is opt  # the user's object, fused in place
    assert [g["tag"] for g in opt.param_groups[:1]] == ["first"]
    assert opt.param_groups[1]["weight_decay"] == 0.3
    assert trainer.lr_scheduler_configs[0].scheduler.optimizer is opt
    # two scheduler steps halved both groups' lr, on the optimizer that stepped
    assert opt.param_groups[0]["lr"] == pytest.approx(0.0025) and opt.param_groups[1]["lr"] == pytest.approx(0.005)
    assert all(len(opt.state[p]) == 3 for g in opt.param_groups for p in g["params"])


def test_fused_false_keeps_the_users_optimizer(tmp_path):
    seen = {}

    class M(build(fl)):
        def configure_optimizers(self):
            seen["original"] = torch.optim.SGD(self.parameters(), lr=0.1)
            return seen["original"]

    _, trainer = _fit(fl, tmp_path, {}, dict(max_steps=1), cls=M, fused=False)
    assert trainer.optimizers[0] is seen["original"]
    assert trainer.precision_plugin._engine is None


def test_unsupported_optimizer_left_alone_and_said_once_at_info(tmp_path, caplog):
    class M(build(fl)):
        def configure_optimizers(self):
            return torch.optim.RMSprop(self.parameters(), lr=0.01)

    with caplog.at_level(logging.INFO):
        _, trainer = _fit(fl, tmp_path, {}, dict(max_steps=3, gradient_clip_val=0.1), cls=M)
    assert type(trainer.optimizers[0]) is torch.optim.RMSprop
    said = [r for r in caplog.records if "RMSprop has no fused version" in r.getMessage()]
    assert len(said) == 1 and said[0].levelno == logging.INFO


def test_clip_by_norm_is_folded_into_the_step_no_clip_grad_norm_pass(tmp_path, monkeypatch):
    def refuse(*a, **k):
        raise AssertionError("clip_grad_norm_ called: clipping should go through the stats pass")

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", refuse)
    _fit(fl, tmp_path, dict(optimizer="adamw", lr=0.01), dict(max_epochs=1, gradient_clip_val=0.05))


def test_pre_step_hook_runs_with_grad_enabled_as_in_lightning(tmp_path):
    for pl in (pl_ref, fl):
        class M(build(pl)):
            def on_before_optimizer_step(self, optimizer):
                self.grad_mode = torch.is_grad_enabled()

        model, _ = _fit(pl, tmp_path / pl.__name__, {}, dict(max_steps=1, gradient_clip_val=1.0), cls=M)
        assert model.grad_mode is True, pl.__name__


def test_bf16_mixed_with_norm_clipping_matches_lightning(tmp_path):
    model_kw, trainer_kw = dict(optimizer="adamw", lr=0.01), dict(max_epochs=2, precision="bf16-mixed",
                                                                  gradient_clip_val=0.05)
    ref, _ = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw)
    assert trainer.scaler is None and trainer.precision_plugin._engine is not None
    _assert_close_weights(ref, got)


def test_flat_grads_option_validation():
    with pytest.raises(ConfigError, match="flat_grads"):
        fl.Trainer(accelerator="cpu", flat_grads="yes")
    with pytest.raises(ConfigError, match="needs `fused=True`"):
        fl.Trainer(accelerator="cpu", fused=False, flat_grads=True)
    assert fl.Trainer(accelerator="cpu").flat_grads is False  # "auto": off
    from fastlight.trainer.config import _flat_grads

    assert _flat_grads("auto", True, torch.device("cuda")) is False  # off on CUDA too (measured, BENCHMARKS.md)
    assert _flat_grads(True, True, torch.device("cuda")) is True


# ---- 16-mixed with the device-side scaler, forced on the CPU through the precision plugin ------------------

def _amp_module(pl, inject, record):
    """The shared TinyModel, with inf/nan written into a grad after backward at chosen global steps, and the
    scale, lr, skipped flag and the grad norm seen by on_before_optimizer_step recorded per batch."""

    class AmpModel(build(pl)):
        def on_after_backward(self):
            value = inject.get(self.trainer.global_step)
            if value is not None:
                self.net[0].weight.grad[0, 0] = value

        def on_before_optimizer_step(self, optimizer):
            grads = [p.grad for p in self.parameters() if p.grad is not None]
            record.setdefault("hook_norm", []).append(torch.linalg.vector_norm(torch.stack(
                [torch.linalg.vector_norm(g) for g in grads])).item())

        def on_train_batch_end(self, outputs, batch, batch_idx):
            record.setdefault("scale", []).append(self.trainer.precision_plugin.scaler.get_scale())
            record.setdefault("lr", []).append(self.trainer.optimizers[0].param_groups[0]["lr"])
            record.setdefault("w", []).append(self.net[0].weight.detach().clone())

    return AmpModel


@pytest.mark.parametrize("clip", [None, ("norm", 0.05), ("value", 0.01)])
def test_device_scaler_matches_grad_scaler_with_injected_inf_nan(clip, tmp_path):
    inject = {2: float("inf"), 5: float("nan"), 6: float("-inf")}
    trainer_kw = dict(max_epochs=2)
    if clip is not None:
        trainer_kw.update(gradient_clip_algorithm=clip[0], gradient_clip_val=clip[1])
    model_kw = dict(optimizer="adamw", lr=0.01, scheduler="onecycle")
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    rec_ref, rec = {}, {}
    ref_plugin = LightningMixed("16-mixed", "cpu", scaler=torch.amp.GradScaler("cpu", growth_interval=2))
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw, cls=_amp_module(pl_ref, inject, rec_ref),
                            plugins=[ref_plugin])
    plugin = MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu", growth_interval=2))
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, cls=_amp_module(fl, inject, rec),
                        plugins=[plugin])
    assert isinstance(trainer.optimizers[0], FusedAdamW)
    assert trainer.scaler is plugin.scaler
    assert rec["scale"] == rec_ref["scale"]  # backoff at each inf/nan, growth every 2 clean steps
    assert rec["lr"] == pytest.approx(rec_ref["lr"], rel=1e-12)  # the scheduler steps on skipped steps too
    for step in inject:  # skipped: the weights did not move
        assert torch.equal(rec["w"][step], rec["w"][step - 1])
    for a, b in zip(rec_ref["w"], rec["w"]):
        torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL)
    # the hook saw unscaled grads, as in Lightning (where GradScaler.unscale_ runs before it)
    assert rec["hook_norm"] == pytest.approx(rec_ref["hook_norm"], rel=1e-4, nan_ok=True)
    _assert_close_weights(ref, got)
    ref_state = [s["step"].item() for s in ref_trainer.optimizers[0].state.values()]
    assert [s["step"].item() for s in trainer.optimizers[0].state.values()] == ref_state
    assert trainer.precision_plugin.state_dict() == ref_plugin.state_dict()


def test_device_scaler_state_round_trips_through_the_plugin():
    plugin = MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))
    ref = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=7)
    plugin.load_state_dict(ref.state_dict())
    assert plugin.state_dict() == ref.state_dict()
    assert type(plugin).__qualname__ == "MixedPrecision"


@pytest.mark.parametrize("flat", [False, True])
def test_manual_optimization_with_device_scaler_matches_lightning(flat, tmp_path):
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    ref, _ = _fit(pl_ref, tmp_path / "pl", {}, dict(max_epochs=2), cls=build_manual(pl_ref),
                  plugins=[LightningMixed("16-mixed", "cpu")])
    got, trainer = _fit(fl, tmp_path / "fl", {}, dict(max_epochs=2), cls=build_manual(fl), flat_grads=flat,
                        plugins=[MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))])
    assert isinstance(trainer.optimizers[0], FusedAdam) and isinstance(trainer.optimizers[1], FusedSGD)
    engine = trainer.precision_plugin._engine
    assert len(engine.flat_list) == (2 if flat else 0)
    # toggle_optimizer flips requires_grad every step: the buffers were not rebuilt for it
    assert all(f.rebuild_count == 1 for f in engine.flat_list)
    _assert_close_weights(ref, got)


def test_manual_clip_gradients_under_amp_clips_the_unscaled_grads(tmp_path):
    """Lightning's self.clip_gradients in manual optimization clips the still-scaled grads (its unscale_ runs
    inside opt.step, later); fastlight records the request and clips by the unscaled norm in the step. So the
    reference is Lightning with a loss scale of 1 (scaled == unscaled), against fastlight with 2**8 (small
    enough that no step overflows in fp16 and is skipped)."""
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    unit = torch.amp.GradScaler("cpu", init_scale=1.0, growth_interval=10**6)
    ref, _ = _fit(pl_ref, tmp_path / "pl", dict(clip=0.05), dict(max_epochs=2), cls=build_manual(pl_ref),
                  plugins=[LightningMixed("16-mixed", "cpu", scaler=unit)])
    got, trainer = _fit(fl, tmp_path / "fl", dict(clip=0.05), dict(max_epochs=2), cls=build_manual(fl),
                        plugins=[MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu", init_scale=2.0**8))])
    assert trainer.scaler.get_scale() == 2.0**8
    _assert_close_weights(ref, got)


# ---- flat gradient buffers, forced on the CPU ---------------------------------------------------------------

def _flat_probe(pl, record):
    class FlatProbe(build(pl)):
        def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
            optimizer.zero_grad(set_to_none=True)  # would drop per-param views: the buffer keeps them

        def on_before_optimizer_step(self, optimizer):
            grads = [p.grad for p in self.parameters()]
            record.setdefault("storages", []).append({g.untyped_storage().data_ptr() for g in grads})
            record.setdefault("ptrs", []).append([g.data_ptr() for g in grads])
            record.setdefault("grads", []).append([g.clone() for g in grads])

        def on_train_epoch_end(self):
            self.zero_grad()  # module.zero_grad(set_to_none=True) drops the views: re-bound before backward

    return FlatProbe


def test_flat_grads_share_one_storage_accumulate_and_match_unfused(tmp_path):
    trainer_kw = dict(max_epochs=2, accumulate_grad_batches=3, gradient_clip_val=0.1)
    model_kw = dict(optimizer="adam", lr=0.01)
    rec_flat, rec_ref = {}, {}
    got, trainer = _fit(fl, tmp_path / "flat", model_kw, trainer_kw, cls=_flat_probe(fl, rec_flat), flat_grads=True)
    ref, _ = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw, cls=_flat_probe(pl_ref, rec_ref))
    engine = trainer.precision_plugin._engine
    assert len(engine.flat_list) == 1
    assert all(len(s) == 1 for s in rec_flat["storages"])  # every grad is a view of the one buffer
    assert all(p == rec_flat["ptrs"][0] for p in rec_flat["ptrs"])  # the same views all along
    assert engine.flat_list[0].rebuild_count == 1
    assert len(rec_flat["grads"]) == len(rec_ref["grads"])
    for gs_ref, gs in zip(rec_ref["grads"], rec_flat["grads"]):  # accumulated over 3 micro-batches
        for a, b in zip(gs_ref, gs):
            torch.testing.assert_close(b, a, rtol=RTOL, atol=ATOL)
    _assert_close_weights(ref, got)


def test_flat_grads_step_skipped_when_no_backward_ran(tmp_path):
    model_kw, trainer_kw = dict(optimizer="adamw", lr=0.01, skip_batch=2), dict(max_epochs=1)
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, flat_grads=True)
    ref_steps = [s["step"].item() for s in ref_trainer.optimizers[0].state.values()]
    assert [s["step"].item() for s in trainer.optimizers[0].state.values()] == ref_steps
    _assert_close_weights(ref, got)


@pytest.mark.parametrize("amp", [False, True])
@pytest.mark.parametrize("case", ["sanity_check_and_accumulation", "training_step_returns_none",
                                  "dict_output_and_clipping"])
def test_hook_order_with_engine_direct_step_matches_lightning(case, amp, tmp_path):
    """The engine's step (direct loop path, flat grads, and under 16-mixed the device scaler) fires the hooks in
    Lightning's order, with and without an `optimizer_step` override."""
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed
    from test_parity_hooks import FIT_CASES, _assert_same, _record

    model_kw, trainer_kw = FIT_CASES[case]
    for skip in (("optimizer_step",), ()):
        ref_kw, got_kw = dict(trainer_kw), dict(trainer_kw, flat_grads=True)
        if amp:
            ref_kw["plugins"] = [LightningMixed("16-mixed", "cpu")]
            got_kw["plugins"] = [MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))]
        ref, _ = _record(pl_ref, tmp_path, model_kw, ref_kw, skip=skip)
        got, _ = _record(fl, tmp_path, model_kw, got_kw, skip=skip)
        _assert_same(ref, got)


@pytest.mark.cuda
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_training_steps_do_not_sync_on_cuda_with_16_mixed_clip_and_flat_grads(tmp_path):
    """20 Trainer steps (16-mixed, DeviceGradScaler, clipping by norm, flat grads, AdamW + a per-step scheduler)
    under torch.cuda.set_sync_debug_mode("error"): nothing in the loop or the engine waits for the GPU."""
    from torch.utils.data import DataLoader, TensorDataset

    class SyncProbe(fl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 3:  # after the warm-up steps (lazy state, allocations)
                torch.cuda.synchronize()
                torch.cuda.set_sync_debug_mode("error")

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if batch_idx == 23:
                torch.cuda.set_sync_debug_mode("default")

    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(24 * 8, 8, generator=g).cuda(), torch.randint(0, 3, (24 * 8,), generator=g).cuda())
    model = build(fl)(optimizer="adamw", scheduler="onecycle", lr=0.01)
    trainer = fl.Trainer(**trainer_kwargs(tmp_path, accelerator="cuda", precision="16-mixed", max_epochs=1,
                                          gradient_clip_val=1.0, log_every_n_steps=50, callbacks=[SyncProbe()],
                                          flat_grads=True,
                                          num_sanity_val_steps=0, limit_val_batches=0))
    try:
        trainer.fit(model, train_dataloaders=DataLoader(data, batch_size=8))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert isinstance(trainer.scaler, DeviceGradScaler) and trainer.precision_plugin._engine.flat_list
    assert trainer.global_step == 24


def test_custom_configure_gradient_clipping_sees_unscaled_grads_under_device_scaler(tmp_path):
    """A configure_gradient_clipping override that clips by hand reads the grads: they are unscaled first, as
    Lightning does for torch's (non-fused) optimizers, so the same user code gives the same weights."""
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    def module(pl):
        class HandClip(build(pl)):
            def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
                torch.nn.utils.clip_grad_norm_(self.parameters(), 0.05)

        return HandClip

    model_kw, trainer_kw = dict(optimizer="adam", lr=0.01), dict(max_epochs=2)
    ref, _ = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw, cls=module(pl_ref),
                  plugins=[LightningMixed("16-mixed", "cpu")])
    got, _ = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, cls=module(fl),
                  plugins=[MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))])
    _assert_close_weights(ref, got)


@pytest.mark.parametrize("algorithm,clip_val", [("norm", 0.05), ("value", 1e-4)])
@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
def test_configure_gradient_clipping_override_sees_clipped_grads_after_super(algorithm, clip_val, optimizer,
                                                                           tmp_path):
    """An override that calls super().configure_gradient_clipping and then reads the grads sees them clipped, as in
    Lightning: with the fused engine the clip is done in place then, not folded into the step."""

    def module(pl, seen):
        class Observing(build(pl)):
            def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
                super().configure_gradient_clipping(optimizer, gradient_clip_val, gradient_clip_algorithm)
                grads = [p.grad.detach().clone() for p in self.parameters() if p.grad is not None]
                if gradient_clip_algorithm == "norm":
                    seen.append(torch.linalg.vector_norm(torch.stack([g.norm() for g in grads])).item())
                else:
                    seen.append(max(g.abs().max().item() for g in grads))

        return Observing

    trainer_kw = dict(max_epochs=1, gradient_clip_val=clip_val, gradient_clip_algorithm=algorithm)
    seen_ref, seen = [], []
    ref, _ = _fit(pl_ref, tmp_path / "pl", dict(optimizer=optimizer, lr=0.01), trainer_kw, cls=module(pl_ref, seen_ref))
    got, trainer = _fit(fl, tmp_path / "fl", dict(optimizer=optimizer, lr=0.01), trainer_kw, cls=module(fl, seen))
    assert trainer.precision_plugin._engine is not None  # the fused engine ran the steps
    assert len(seen) == len(seen_ref) == 5
    torch.testing.assert_close(seen, seen_ref, rtol=1e-4, atol=1e-9)
    assert max(seen) == pytest.approx(clip_val, rel=1e-4)  # every step's grads were clipped before the hook read them
    _assert_close_weights(ref, got)


def test_patched_torch_optimizer_step_is_left_unfused_and_gets_the_users_step_kwargs(tmp_path):
    """torch.optim.SGD.step replaced on the class (a mock, a user's patch): that step runs, with the extra keyword
    arguments given to LightningOptimizer.step, and nothing but the calls is recorded on it, as in Lightning."""
    from unittest.mock import ANY, call, patch

    def run(pl, root):
        class Manual(pl.LightningModule):
            def __init__(self):
                super().__init__()
                self.automatic_optimization = False
                self.layer = nn.Linear(4, 2)

            def training_step(self, batch, batch_idx):
                opt = self.optimizers()

                def closure():
                    self.manual_backward(self.layer(batch[0]).sum())

                opt.step(closure=closure, tag="custom")
                opt.zero_grad()

            def train_dataloader(self):
                return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.randn(6, 4)), batch_size=2)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        with patch("torch.optim.SGD.step") as step:
            trainer = pl.Trainer(**trainer_kwargs(root, max_epochs=1))
            trainer.fit(Manual())
        # (the calls of the mock itself: torch's Optimizer.__init__ also reads attributes of the class's step)
        return step.call_args_list, trainer

    ref_calls, _ = run(pl_ref, tmp_path / "pl")
    calls, trainer = run(fl, tmp_path / "fl")
    assert ref_calls == [call(closure=ANY, tag="custom")] * 3
    assert calls == [call(closure=ANY, tag="custom")] * 3
    assert not isinstance(trainer.optimizers[0], FusedSGD)


def test_patched_torch_optimizer_zero_grad_is_left_unfused_and_called_like_lightning(tmp_path):
    """torch.optim.SGD.zero_grad replaced on the class: the optimizer stays torch's, and the patched zero_grad is
    called as often as under Lightning (here by an optimizer_zero_grad hook that clears every other batch)."""
    from unittest.mock import patch

    def run(pl, root):
        class Model(build(pl)):
            def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
                if batch_idx % 2 == 0:
                    optimizer.zero_grad()

        with patch("torch.optim.SGD.zero_grad") as zero_grad:
            trainer = pl.Trainer(**trainer_kwargs(root, max_epochs=1))
            trainer.fit(Model())
        return zero_grad.call_count, trainer

    ref_count, _ = run(pl_ref, tmp_path / "pl")
    count, trainer = run(fl, tmp_path / "fl")
    assert count == ref_count == 3  # batches 0, 2, 4 of 5
    assert not isinstance(trainer.optimizers[0], FusedSGD)


def test_16_mixed_on_cuda_picks_the_device_scaler_only_with_fused():
    from fastlight.trainer.precision import make_precision

    fused = make_precision("16-mixed", "cuda", fused=True, device=torch.device("cuda", 1))
    assert isinstance(fused.scaler, DeviceGradScaler) and fused.scaler._device == torch.device("cuda", 1)
    assert type(fused).__qualname__ == "MixedPrecision"  # Lightning's checkpoint key for the scaler state
    plain = make_precision("16-mixed", "cuda", fused=False)
    assert isinstance(plain.scaler, torch.amp.GradScaler)
    assert make_precision("bf16-mixed", "cuda", fused=True).scaler is None
    with pytest.raises(ValueError, match="does not use a scaler"):
        MixedPrecision("bf16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))


@pytest.mark.parametrize("flat", [False, True])
def test_manual_clip_gradients_fp32_folded_into_the_step_matches_lightning(flat, tmp_path, monkeypatch):
    ref, _ = _fit(pl_ref, tmp_path / "pl", dict(clip=0.05), dict(max_epochs=2), cls=build_manual(pl_ref))
    real_clip = torch.nn.utils.clip_grad_norm_
    calls = []
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda *a, **k: calls.append(1) or real_clip(*a, **k))
    got, trainer = _fit(fl, tmp_path / "fl", dict(clip=0.05), dict(max_epochs=2), cls=build_manual(fl),
                        flat_grads=flat)
    assert calls == []  # self.clip_gradients went through the stats pass, not clip_grad_norm_
    _assert_close_weights(ref, got)


def test_device_scaler_state_checkpointed_under_lightnings_key_resumes_in_both(tmp_path):
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    from fastlight.utilities.checkpoint_io import load_checkpoint
    from test_resume import fit as resume_fit

    ck = fl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    trainer, _ = resume_fit(fl, tmp_path / "a", 1, [ck],
                            plugins=[MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu", init_scale=16.0, growth_interval=1))])
    ckpt = load_checkpoint(ck.last_model_path)
    assert ckpt["MixedPrecision"] == trainer.scaler.state_dict()
    assert ckpt["MixedPrecision"]["scale"] > 16.0  # grew on the device at clean steps
    seen = []
    probe = fl.callbacks.LambdaCallback(on_train_start=lambda t, m: seen.append(t.scaler.get_scale()))
    resume_fit(fl, tmp_path / "b", 2, [probe], enable_checkpointing=False, ckpt_path=ck.last_model_path,
               plugins=[MixedPrecision("16-mixed", "cpu", scaler=DeviceGradScaler("cpu"))])
    ref_seen = []
    ref_probe = pl_ref.callbacks.LambdaCallback(on_train_start=lambda t, m: ref_seen.append(
        t.precision_plugin.scaler.get_scale()))
    resume_fit(pl_ref, tmp_path / "c", 2, [ref_probe], enable_checkpointing=False, ckpt_path=ck.last_model_path,
               plugins=[LightningMixed("16-mixed", "cpu")])
    assert seen == ref_seen == [ckpt["MixedPrecision"]["scale"]]
