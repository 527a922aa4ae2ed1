"""WeightAveraging and EMAWeightAveraging under fastlight give pytorch_lightning's results for the same user code and
seed: final weights and buffers (bit-identical with fused=False), the validation metrics computed with the averaged
weights, the checkpoint layout (averaged weights under "state_dict", the training ones under "current_model_state")
and a resume from a mid-run checkpoint."""
import pytest
import torch

pl_ref = pytest.importorskip("pytorch_lightning")

from fastlight.engine.optim import _FusedMixin
import fastlight as fl  # noqa: E402
from _averaging_helpers import assert_state_dicts_equal, build_bn, lr_recorder, needs_native_kernels  # noqa: E402
from _parity_helpers import quiet_warnings, trainer_kwargs  # noqa: E402

quiet_warnings()


def _every_epoch_swa(pl):
    class EpochSWA(pl.callbacks.WeightAveraging):
        """A user subclass: the average is updated at epoch ends from epoch 1 on, not after steps."""

        def should_update(self, step_idx=None, epoch_idx=None):
            return epoch_idx is not None and epoch_idx >= 1

    return EpochSWA()


CALLBACKS = {
    "swa_every_step": lambda pl: pl.callbacks.WeightAveraging(),
    "swa_no_buffers": lambda pl: pl.callbacks.WeightAveraging(use_buffers=False),
    "ema_defaults": lambda pl: pl.callbacks.EMAWeightAveraging(decay=0.9),
    "ema_cadence": lambda pl: pl.callbacks.EMAWeightAveraging(decay=0.8, update_every_n_steps=2,
                                                               update_starting_at_step=3, update_starting_at_epoch=2),
    "subclass_epoch_updates": _every_epoch_swa,
}


def _val_recorder(pl):
    class ValRecorder(pl.Callback):
        def __init__(self):
            self.val_losses = []

        def on_validation_end(self, trainer, pl_module):
            self.val_losses.append(float(trainer.callback_metrics["val_loss"]))

    return ValRecorder()


def _fit(pl, tmp_path, cb_name, model_kw=None, trainer_kw=None, ckpt_path=None, extra_callbacks=(), **extra):
    torch.manual_seed(1234)
    model = build_bn(pl)(**(model_kw or {}))
    avg = CALLBACKS[cb_name](pl)
    vals, lrs = _val_recorder(pl), lr_recorder(pl)
    kw = trainer_kwargs(tmp_path, max_epochs=3, **(trainer_kw or {}))
    kw.update(extra)
    trainer = pl.Trainer(callbacks=[avg, vals, lrs, *extra_callbacks], **kw)
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer, avg, vals


@pytest.mark.parametrize("cb_name", sorted(CALLBACKS))
def test_weight_averaging_matches_lightning_bitwise_without_fused(cb_name, tmp_path):
    ref, ref_tr, ref_avg, ref_vals = _fit(pl_ref, tmp_path / "pl", cb_name)
    got, tr, avg, vals = _fit(fl, tmp_path / "fl", cb_name, fused=False)
    assert_state_dicts_equal(ref, got)  # the averaged weights (and buffers) copied in at the end
    assert vals.val_losses == ref_vals.val_losses  # the sanity check and each validation ran on the average
    assert_state_dicts_equal(ref_avg._average_model, avg._average_model)
    assert int(avg._average_model.n_averaged) == int(ref_avg._average_model.n_averaged)
    assert avg.state_dict() == ref_avg.state_dict()
    assert avg._average_model.module._trainer is None  # the copy left the Trainer behind


def test_weight_averaging_with_accumulation_and_step_scheduler(tmp_path):
    kw = dict(model_kw=dict(optimizer="adam", lr=0.01, scheduler="exp_per_step"),
              trainer_kw=dict(accumulate_grad_batches=2))
    ref, _, ref_avg, ref_vals = _fit(pl_ref, tmp_path / "pl", "ema_cadence", **kw)
    got, _, avg, vals = _fit(fl, tmp_path / "fl", "ema_cadence", fused=False, **kw)
    assert_state_dicts_equal(ref, got)
    assert vals.val_losses == ref_vals.val_losses
    assert avg.state_dict() == ref_avg.state_dict()


@needs_native_kernels
@pytest.mark.parametrize("cb_name", ["swa_every_step", "ema_defaults"])
def test_weight_averaging_with_fused_optimizers_within_fp32(cb_name, tmp_path):
    ref, _, _, ref_vals = _fit(pl_ref, tmp_path / "pl", cb_name)
    got, tr, _, vals = _fit(fl, tmp_path / "fl", cb_name)  # fused=True, the default
    assert isinstance(tr.optimizers[0], _FusedMixin)  # fused in place: it still reports the torch class
    assert_state_dicts_equal(ref, got, exact=False)
    torch.testing.assert_close(torch.tensor(vals.val_losses), torch.tensor(ref_vals.val_losses))


def test_weight_averaging_checkpoint_layout_and_resume_match_lightning(tmp_path):
    trainer_kw = dict(enable_checkpointing=True)
    runs = {}
    for name, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / name, filename="{epoch}", save_top_k=-1)
        runs[name] = _fit(pl, tmp_path / name, "ema_defaults", trainer_kw=trainer_kw, extra_callbacks=[ckpt], **extra)
    ref = torch.load(tmp_path / "pl" / "epoch=1.ckpt", weights_only=False)
    got = torch.load(tmp_path / "fl" / "epoch=1.ckpt", weights_only=False)
    for key in ("state_dict", "current_model_state", "averaging_state"):
        assert list(got[key]) == list(ref[key]), key
        for k, v in ref[key].items():
            assert torch.equal(got[key][k], v), (key, k)
    assert got["callbacks"]["EMAWeightAveraging"] == ref["callbacks"]["EMAWeightAveraging"] == \
        {"latest_update_step": 6}
    # the averaged weights are what was saved as the model; the training weights differ from them
    assert not torch.equal(got["state_dict"]["head.2.weight"], got["current_model_state"]["head.2.weight"])

    resumed = {}
    for name, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        resumed[name] = _fit(pl, tmp_path / f"resume_{name}", "ema_defaults",
                             ckpt_path=str(tmp_path / name / "epoch=1.ckpt"), **extra)
    (ref_m, ref_tr, ref_avg, ref_vals), (m, tr, avg, vals) = resumed["pl"], resumed["fl"]
    # the loader shuffles: fastlight's checkpoint holds the RNG state, so its resumed run ends where the uninterrupted
    # run ends (Lightning's resumed run draws another data order)
    full_m, _, full_avg, full_vals = runs["pl"]
    assert_state_dicts_equal(full_m, m)
    assert_state_dicts_equal(full_avg._average_model, avg._average_model)
    assert vals.val_losses == full_vals.val_losses[-len(vals.val_losses):]
    assert tr.global_step == ref_tr.global_step


def test_ema_weight_averaging_update_schedule():
    ema = fl.callbacks.EMAWeightAveraging(update_every_n_steps=3, update_starting_at_step=4,
                                          update_starting_at_epoch=2)
    assert [s for s in range(12) if ema.should_update(step_idx=s)] == [6, 9]
    assert [e for e in range(4) if ema.should_update(epoch_idx=e)] == [2, 3]
    never = fl.callbacks.EMAWeightAveraging(update_every_n_steps=0)
    assert not any(never.should_update(step_idx=s) for s in range(5))
    assert not never.should_update(epoch_idx=3)


def test_ema_weight_averaging_refuses_its_own_avg_fn():
    with pytest.raises(TypeError, match="EMAWeightAveraging sets `avg_fn` itself"):
        fl.callbacks.EMAWeightAveraging(avg_fn=lambda a, b, n: a)
