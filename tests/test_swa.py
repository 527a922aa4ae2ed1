"""StochasticWeightAveraging under fastlight gives pytorch_lightning's results for the same user code and seed: final
weights and BatchNorm statistics (bit-identical with fused=False, fp32-close with the fused optimizers), the LR of
every step, the hooks of the extra batch-norm epoch, the callback's checkpoint state and a resume from a checkpoint
taken mid-SWA; bad arguments get Lightning's errors."""
import pytest
import torch

from fastlight.engine.optim import _FusedMixin

pl_ref = pytest.importorskip("pytorch_lightning")

import fastlight as fl  # noqa: E402
from _averaging_helpers import assert_state_dicts_equal, build_bn, lr_recorder, needs_native_kernels  # noqa: E402
from _parity_helpers import quiet_warnings, recording_callback, recording_module, trainer_kwargs  # noqa: E402

quiet_warnings()

CASES = {
    # model kwargs, SWA kwargs, trainer kwargs
    "bn_steplr_cos": (dict(scheduler="step"), dict(swa_lrs=0.05, swa_epoch_start=2, annealing_epochs=2),
                      dict(max_epochs=4)),
    "bn_no_scheduler_linear": (dict(), dict(swa_lrs=0.02, swa_epoch_start=0.5, annealing_epochs=1,
                                            annealing_strategy="linear"), dict(max_epochs=4)),
    "bn_adam_no_validation": (dict(optimizer="adam", lr=0.01), dict(swa_lrs=[0.005], swa_epoch_start=1),
                              dict(max_epochs=3, limit_val_batches=0)),
    "bn_accumulate_limit": (dict(optimizer="adamw", lr=0.01), dict(swa_lrs=0.003, swa_epoch_start=2),
                            dict(max_epochs=3, accumulate_grad_batches=2, limit_train_batches=2)),
    "bn_unlimited_epochs_max_steps": (dict(), dict(swa_lrs=0.05, swa_epoch_start=2), dict(max_epochs=-1, max_steps=8)),
    "no_bn_avg_fn": (dict(batch_norm=False), dict(swa_lrs=0.05, swa_epoch_start=2,
                                                 avg_fn=lambda avg, p, n: 0.5 * avg + 0.5 * p),
                     dict(max_epochs=4)),
}


def _fit(pl, tmp_path, model_kw, swa_kw, trainer_kw, record_hooks=False, ckpt_path=None, extra_callbacks=(),
         **extra):
    torch.manual_seed(1234)
    calls = []
    cls = build_bn(pl)
    if record_hooks:
        cls = recording_module(cls, calls, skip=("on_train_batch_end",))
    model = cls(**model_kw)
    swa = pl.callbacks.StochasticWeightAveraging(**swa_kw)
    lrs = lr_recorder(pl)
    callbacks = [swa, lrs, *extra_callbacks]
    if record_hooks:
        callbacks.append(recording_callback(pl, calls))
    kw = trainer_kwargs(tmp_path, num_sanity_val_steps=0, **trainer_kw)
    kw.update(extra)
    trainer = pl.Trainer(callbacks=callbacks, **kw)
    trainer.fit(model, ckpt_path=ckpt_path)
    return model, trainer, swa, lrs, calls


@pytest.mark.parametrize("case", sorted(CASES))
def test_swa_matches_lightning_bitwise_without_fused(case, tmp_path):
    model_kw, swa_kw, trainer_kw = CASES[case]
    ref, ref_tr, ref_swa, ref_lrs, _ = _fit(pl_ref, tmp_path / "pl", model_kw, swa_kw, trainer_kw)
    got, tr, swa, lrs, _ = _fit(fl, tmp_path / "fl", model_kw, swa_kw, trainer_kw, fused=False)
    # weights, BatchNorm running statistics and num_batches_tracked after the batch-norm epoch
    assert_state_dicts_equal(ref, got)
    assert lrs.lrs == ref_lrs.lrs  # the LR of every step (the SWALR annealing)
    # trainer.max_epochs / accumulate_grad_batches / num_training_batches seen at each epoch start (the extra epoch)
    assert lrs.max_epochs == ref_lrs.max_epochs
    assert got.step_losses == ref.step_losses  # the extra epoch's losses are divided by its accumulation
    assert (tr.global_step, tr.current_epoch, tr.max_epochs, tr.accumulate_grad_batches) == \
        (ref_tr.global_step, ref_tr.current_epoch, ref_tr.max_epochs, ref_tr.accumulate_grad_batches)
    assert int(swa.n_averaged) == int(ref_swa.n_averaged)
    assert [type(c.scheduler).__name__ for c in tr.lr_scheduler_configs] == \
        [type(c.scheduler).__name__ for c in ref_tr.lr_scheduler_configs]


def test_swa_batch_norm_statistics_recomputed_for_the_average(tmp_path):
    """After fit the module holds the averaged weights and BatchNorm statistics of one pass with them (cumulative
    mean, momentum restored)."""
    model_kw, swa_kw, trainer_kw = CASES["bn_steplr_cos"]
    got, tr, swa, _, _ = _fit(fl, tmp_path, model_kw, swa_kw, trainer_kw, fused=False)
    for p_avg, p in zip(swa._average_model.parameters(), got.parameters()):
        assert torch.equal(p_avg, p)
    bn = got.backbone[1]
    assert bn.momentum == 0.1
    assert int(bn.num_batches_tracked) == tr.num_training_batches  # one batch-norm epoch, back to 3 batches
    with torch.no_grad():
        x = torch.cat([b[0] for b in got.train_dataloader()])
        h = got.backbone[0](x)
    # the cumulative mean of the per-batch means of the three equal-size batches equals the mean over all of them
    torch.testing.assert_close(bn.running_mean, h.mean(0), rtol=1e-5, atol=1e-6)


# SGD only: the bias in front of the BatchNorm gets a gradient that is rounding noise, which Adam's normalization
# blows up to lr-sized steps, so Adam's fp32-level differences do not stay fp32-sized there
@needs_native_kernels
@pytest.mark.parametrize("case", ["bn_steplr_cos", "bn_no_scheduler_linear"])
def test_swa_with_fused_optimizers_matches_lightning_within_fp32(case, tmp_path):
    model_kw, swa_kw, trainer_kw = CASES[case]
    ref, ref_tr, _, ref_lrs, _ = _fit(pl_ref, tmp_path / "pl", model_kw, swa_kw, trainer_kw)
    got, tr, _, lrs, _ = _fit(fl, tmp_path / "fl", model_kw, swa_kw, trainer_kw)  # fused=True, the default
    assert isinstance(tr.optimizers[0], _FusedMixin)  # fused in place: it still reports the torch class
    assert_state_dicts_equal(ref, got, exact=False)
    assert lrs.lrs == ref_lrs.lrs
    assert tr.global_step == ref_tr.global_step


def test_swa_batch_norm_epoch_runs_lightnings_hooks(tmp_path):
    """The extra epoch: training_step per batch without zero_grad/backward hooks, the optimizer called once on the
    last batch (one accumulation window), validation and the epoch hooks as usual."""
    model_kw, swa_kw, trainer_kw = CASES["bn_steplr_cos"]
    *_, ref_calls = _fit(pl_ref, tmp_path / "pl", model_kw, swa_kw, trainer_kw, record_hooks=True)
    *_, calls = _fit(fl, tmp_path / "fl", model_kw, swa_kw, trainer_kw, record_hooks=True, fused=False)
    assert calls == ref_calls
    last_epoch = calls[max(i for i, c in enumerate(calls) if c == "on_train_epoch_start"):]
    assert "backward" not in last_epoch and "on_before_zero_grad" not in last_epoch
    assert [c for c in last_epoch if c.startswith("optimizer_step")] == ["optimizer_step(4, 2)"]


def _swa_state(path):
    return torch.load(path, weights_only=False)["callbacks"]["StochasticWeightAveraging"]


def _assert_same_state(ref, got):
    assert got.keys() == ref.keys()
    assert (got["n_averaged"], got["latest_update_epoch"]) == (ref["n_averaged"], ref["latest_update_epoch"])
    assert got["scheduler_state"] == ref["scheduler_state"]
    assert list(got["average_model_state"]) == list(ref["average_model_state"])
    for k, v in ref["average_model_state"].items():
        assert torch.equal(got["average_model_state"][k], v), k


def test_swa_checkpoint_state_and_resume_mid_swa_match_lightning(tmp_path):
    model_kw, swa_kw, trainer_kw = CASES["bn_steplr_cos"]
    trainer_kw = dict(trainer_kw, enable_checkpointing=True)
    runs = {}
    for name, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        ckpt = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / name, filename="{epoch}", save_top_k=-1)
        runs[name] = _fit(pl, tmp_path / name, model_kw, swa_kw, trainer_kw, extra_callbacks=[ckpt], **extra)
    for epoch in range(4):  # before SWA, mid-SWA and after the batch-norm epoch
        _assert_same_state(_swa_state(tmp_path / "pl" / f"epoch={epoch}.ckpt"),
                           _swa_state(tmp_path / "fl" / f"epoch={epoch}.ckpt"))
    assert _swa_state(tmp_path / "fl" / "epoch=2.ckpt")["n_averaged"] == 2

    # resume from the end of epoch 2 (SWA running since epoch 1): fastlight from its own file, Lightning from its own
    resumed = {}
    for name, pl, extra in (("pl", pl_ref, {}), ("fl", fl, {"fused": False})):
        resumed[name] = _fit(pl, tmp_path / f"resume_{name}", model_kw, swa_kw, trainer_kw,
                             ckpt_path=str(tmp_path / name / "epoch=2.ckpt"), **extra)
    ref, ref_tr, _, ref_lrs, _ = resumed["pl"]
    got, tr, _, lrs, _ = resumed["fl"]
    # the loader shuffles: fastlight's checkpoint holds the RNG state, so its resumed run ends where the uninterrupted
    # run ends (Lightning's resumed run draws another data order)
    assert_state_dicts_equal(runs["pl"][0], got)
    assert lrs.lrs == ref_lrs.lrs
    assert (tr.global_step, tr.current_epoch) == (ref_tr.global_step, ref_tr.current_epoch)
    assert lrs.lrs == runs["fl"][3].lrs[-len(lrs.lrs):]  # SWALR continues where the interrupted run was


@pytest.mark.parametrize("kwargs, match", [
    (dict(swa_lrs=0.0), "swa_lrs` should a positive float"),
    (dict(swa_lrs=-0.1), "swa_lrs` should a positive float"),
    (dict(swa_lrs=[0.1, -1.0]), "swa_lrs` should a positive float"),
    (dict(swa_lrs=1), "swa_lrs` should a positive float"),
    (dict(swa_lrs=0.1, swa_epoch_start=0), "swa_epoch_start should be a >0 integer"),
    (dict(swa_lrs=0.1, swa_epoch_start=1.5), "swa_epoch_start should be a >0 integer"),
    (dict(swa_lrs=0.1, swa_epoch_start=-0.1), "swa_epoch_start should be a >0 integer"),
    (dict(swa_lrs=0.1, annealing_strategy="exp"), "annealing_strategy"),
    (dict(swa_lrs=0.1, annealing_epochs=-1), "annealing_epochs"),
    (dict(swa_lrs=0.1, avg_fn=3), "avg_fn` should be callable"),
    (dict(swa_lrs=0.1, device=3), "device is expected to be a torch.device or a str"),
])
def test_swa_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        fl.callbacks.StochasticWeightAveraging(**kwargs)


def test_swa_float_start_with_unlimited_epochs_is_refused(tmp_path):
    with pytest.raises(ValueError, match="`swa_epoch_start` as a float is not supported when `max_epochs=-1`"):
        _fit(fl, tmp_path, {}, dict(swa_lrs=0.1), dict(max_epochs=-1, max_steps=3), fused=False)


def test_swa_lrs_list_must_match_param_groups(tmp_path):
    with pytest.raises(ValueError, match="`swa_lrs` has 2 values but the optimizer has 1 param groups"):
        _fit(fl, tmp_path, {}, dict(swa_lrs=[0.1, 0.2], swa_epoch_start=1), dict(max_epochs=2), fused=False)


def test_trainer_accumulate_grad_batches_is_settable_by_callbacks(tmp_path):
    """The knob SWA turns (and GradientAccumulationScheduler): set on the Trainer, read by the loop each batch."""
    def run(pl, **extra):
        torch.manual_seed(1234)
        model = build_bn(pl)(optimizer="adam", lr=0.01)
        sched = pl.callbacks.GradientAccumulationScheduler({1: 3})
        trainer = pl.Trainer(callbacks=[sched], **trainer_kwargs(tmp_path, max_epochs=2, **extra))
        trainer.fit(model)
        return model, trainer

    ref, ref_tr = run(pl_ref)
    got, tr = run(fl, fused=False)
    assert_state_dicts_equal(ref, got)
    assert tr.global_step == ref_tr.global_step == 3 + 1
    with pytest.raises(ValueError, match="accumulate_grad_batches` must be an int >= 1"):
        tr.accumulate_grad_batches = 0
