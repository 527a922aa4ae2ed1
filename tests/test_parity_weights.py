"""Final weights after a fit are bit-for-bit equal to pytorch_lightning's for the same user code and seed
(fused=False, CPU, fp32): optimizers, schedulers, accumulation, clipping, limits, validation cadence, dropout
(the global RNG is consumed in the same order, dataloader shuffling included)."""
import pytest
import torch

pl_ref = pytest.importorskip("pytorch_lightning")

import fastlight as fl  # noqa: E402
from _parity_helpers import build, quiet_warnings, trainer_kwargs  # noqa: E402

quiet_warnings()

CASES = {
    "sgd": (dict(), dict(max_epochs=2)),
    "adam_steplr": (dict(optimizer="adam", lr=0.01, scheduler="step"), dict(max_epochs=3)),
    "adamw_onecycle_per_step": (dict(optimizer="adamw", lr=0.01, scheduler="onecycle"), dict(max_epochs=2)),
    "plateau_monitor": (dict(scheduler="plateau"), dict(max_epochs=3)),
    "plateau_on_train_metric": (dict(scheduler="plateau", monitor="train_loss"), dict(max_epochs=2)),
    "accumulate_3": (dict(optimizer="adam", lr=0.01), dict(max_epochs=2, accumulate_grad_batches=3)),
    "clip_norm": (dict(lr=0.5), dict(max_epochs=2, gradient_clip_val=0.05)),
    "clip_value": (dict(optimizer="adamw", lr=0.01), dict(max_epochs=2, gradient_clip_val=0.01,
                                                          gradient_clip_algorithm="value")),
    "limits_int_and_fraction": (dict(), dict(max_epochs=2, limit_train_batches=3, limit_val_batches=0.5)),
    "val_check_interval": (dict(scheduler="plateau", dropout=0.3), dict(max_epochs=2, val_check_interval=0.5)),
    "check_val_every_2": (dict(dropout=0.2), dict(max_epochs=3, check_val_every_n_epoch=2)),
    "max_steps_mid_epoch": (dict(optimizer="adam", lr=0.01), dict(max_steps=7, max_epochs=-1)),
    "dropout_shuffle_sanity": (dict(dropout=0.5), dict(max_epochs=2, num_sanity_val_steps=2)),
    "fast_dev_run": (dict(dropout=0.1), dict(fast_dev_run=2)),
    "overfit_batches": (dict(optimizer="adam", lr=0.01), dict(max_epochs=2, overfit_batches=2)),
    "reload_dataloaders": (dict(dropout=0.1), dict(max_epochs=2, reload_dataloaders_every_n_epochs=1,
                                                   limit_val_batches=1)),
    "accumulate_onecycle_clip": (dict(optimizer="adamw", lr=0.02, scheduler="onecycle"),
                                 dict(max_epochs=2, accumulate_grad_batches=2, gradient_clip_val=0.1)),
}


def _fit(pl, tmp_path, model_kw, trainer_kw, **extra):
    torch.manual_seed(1234)
    model = build(pl)(**model_kw)
    kw = trainer_kwargs(tmp_path, **trainer_kw)
    kw.update(extra)
    trainer = pl.Trainer(**kw)
    trainer.fit(model)
    trainer.rng_after_fit = torch.get_rng_state()
    return model, trainer


@pytest.mark.parametrize("case", sorted(CASES))
def test_final_weights_bitwise_equal_to_lightning(case, tmp_path):
    model_kw, trainer_kw = CASES[case]
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, fused=False)
    assert trainer.global_step == ref_trainer.global_step
    # the global RNG was consumed identically (dataloader iterators, shuffling, dropout)
    assert torch.equal(trainer.rng_after_fit, ref_trainer.rng_after_fit)
    assert trainer.current_epoch == ref_trainer.current_epoch
    ref_sd, got_sd = ref.state_dict(), got.state_dict()
    assert list(ref_sd) == list(got_sd)
    for k in ref_sd:
        assert torch.equal(ref_sd[k], got_sd[k]), f"{case}: parameter {k} differs"
    # the optimizer state and the learning rate end up identical too
    ref_opt, got_opt = ref_trainer.optimizers[0], trainer.optimizers[0]
    assert ref_opt.param_groups[0]["lr"] == got_opt.param_groups[0]["lr"]
    for p_ref, p_got in zip(ref.parameters(), got.parameters()):
        for key, v in ref_opt.state[p_ref].items():
            assert torch.equal(torch.as_tensor(v), torch.as_tensor(got_opt.state[p_got][key])), key




@pytest.mark.parametrize("precision", ["bf16-mixed", "bf16-true", "64-true", "16-mixed"])
def test_precision_weights_bitwise_equal_to_lightning(precision, tmp_path):
    """On CPU, 16-mixed falls back to bf16-mixed as in Lightning; the others are bit-exact too."""
    model_kw, trainer_kw = dict(optimizer="adam", lr=0.01), dict(max_epochs=1, precision=precision,
                                                                 gradient_clip_val=0.5)
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw)
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, fused=False)
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        assert a.dtype == b.dtype, k
        assert torch.equal(a, b), f"{precision}: {k} differs"


def test_dataloaders_passed_to_fit_bitwise_equal_to_lightning(tmp_path):
    from torch.utils.data import DataLoader

    from _parity_helpers import make_data

    def run(pl, **extra):
        torch.manual_seed(99)
        model = build(pl)(dropout=0.2)
        trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=2, num_sanity_val_steps=-1), **extra)
        trainer.fit(model, train_dataloaders=DataLoader(make_data(30), batch_size=4, shuffle=True),
                    val_dataloaders=[DataLoader(make_data(9, seed=1), batch_size=4),
                                     DataLoader(make_data(6, seed=2), batch_size=4)])
        test_out = trainer.test(model, dataloaders=DataLoader(make_data(10, seed=3), batch_size=4), verbose=False)
        return model, test_out

    ref, ref_out = run(pl_ref)
    got, got_out = run(fl, fused=False)
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        assert torch.equal(a, b), k
    assert got_out == ref_out


def test_16_mixed_grad_scaler_path_matches_lightning_on_cpu(tmp_path):
    """fp16 autocast + torch.amp.GradScaler (what 16-mixed is on GPU), forced on CPU through a precision plugin
    in both frameworks: same hooks' effects, same scale, same weights."""
    from pytorch_lightning.plugins.precision import MixedPrecision as LightningMixed

    from fastlight.trainer.precision import MixedPrecision

    model_kw, trainer_kw = dict(optimizer="adam", lr=0.01), dict(max_epochs=1, gradient_clip_val=0.5)
    ref, ref_trainer = _fit(pl_ref, tmp_path / "pl", model_kw, trainer_kw, plugins=[LightningMixed("16-mixed", "cpu")])
    got, trainer = _fit(fl, tmp_path / "fl", model_kw, trainer_kw, fused=False,
                        plugins=[MixedPrecision("16-mixed", "cpu")])
    assert trainer.scaler.get_scale() == ref_trainer.precision_plugin.scaler.get_scale()
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        assert torch.equal(a, b), k
