"""The hooks fire in exactly Lightning's order (module and callbacks recorded side by side, same user code)."""
import difflib

import pytest
import torch

pl_ref = pytest.importorskip("pytorch_lightning")

import fastlight as fl  # noqa: E402
from _parity_helpers import (build, build_datamodule, build_manual, quiet_warnings, recording_callback,  # noqa: E402
                             recording_module, trainer_kwargs)

quiet_warnings()


def _record(pl, tmp_path, model_kw, trainer_kw, method="fit", builder=build, datamodule=False, skip=()):
    calls = []
    torch.manual_seed(7)
    model = recording_module(builder(pl), calls, skip=skip)(**model_kw)
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, callbacks=[recording_callback(pl, calls)], **trainer_kw))
    kwargs = {}
    if datamodule:
        kwargs["datamodule"] = dm = build_datamodule(pl)()
    getattr(trainer, method)(model, **kwargs)
    if datamodule:
        calls += ["datamodule." + c for c in dm.calls]
    return calls, model


def _assert_same(ref, got):
    if ref != got:
        diff = "\n".join(difflib.unified_diff(ref, got, "lightning", "fastlight", lineterm=""))
        pytest.fail("hook sequences differ:\n" + diff)


FIT_CASES = {
    "sanity_check_and_accumulation": (dict(n_train=24, n_val=8),
                                      dict(max_epochs=1, limit_val_batches=1, num_sanity_val_steps=1,
                                           accumulate_grad_batches=2, limit_train_batches=3)),
    "two_epochs_step_scheduler": (dict(scheduler="step", n_train=24), dict(max_epochs=2)),
    "validation_inside_epoch_plateau": (dict(scheduler="plateau", n_train=32), dict(max_epochs=2, val_check_interval=0.5)),
    "onecycle_max_steps": (dict(scheduler="onecycle"), dict(max_steps=3)),
    "check_val_every_2_epochs": (dict(), dict(max_epochs=3, check_val_every_n_epoch=2, limit_train_batches=2)),
    "training_step_returns_none": (dict(skip_batch=1, n_train=24), dict(max_epochs=1)),
    "on_train_batch_start_minus_one": (dict(stop_batch=2), dict(max_epochs=2)),
    "dict_output_and_clipping": (dict(return_dict=True, n_train=16), dict(max_epochs=1, gradient_clip_val=1.0)),
    "two_val_dataloaders": (dict(n_val_loaders=2, n_train=16, log_extra=True), dict(max_epochs=1)),
    "no_sanity_check": (dict(n_train=16), dict(max_epochs=1, num_sanity_val_steps=0, limit_val_batches=0.5)),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_hook_order_matches_lightning(case, tmp_path):
    model_kw, trainer_kw = FIT_CASES[case]
    ref, _ = _record(pl_ref, tmp_path, model_kw, trainer_kw)
    got, _ = _record(fl, tmp_path, model_kw, trainer_kw)
    _assert_same(ref, got)


@pytest.mark.parametrize("method", ["validate", "test", "predict"])
def test_evaluation_hook_order_matches_lightning(method, tmp_path):
    ref, _ = _record(pl_ref, tmp_path, dict(n_val_loaders=1), dict(), method=method)
    got, _ = _record(fl, tmp_path, dict(n_val_loaders=1), dict(), method=method)
    _assert_same(ref, got)


def test_validate_with_two_dataloaders_passes_dataloader_idx(tmp_path):
    ref, _ = _record(pl_ref, tmp_path, dict(n_val_loaders=2), dict(), method="validate")
    got, _ = _record(fl, tmp_path, dict(n_val_loaders=2), dict(), method="validate")
    _assert_same(ref, got)
    assert "validation_step(0, 1)" in got


def test_datamodule_hooks_and_order_match_lightning(tmp_path):
    ref, _ = _record(pl_ref, tmp_path, dict(), dict(max_epochs=1), datamodule=True)
    got, _ = _record(fl, tmp_path, dict(), dict(max_epochs=1), datamodule=True)
    _assert_same(ref, got)
    assert "train_dataloader" not in got  # the datamodule's loaders are used, not the module's hooks
    assert "datamodule.train_dataloader" in got


def test_manual_optimization_hooks_and_weights_match_lightning(tmp_path):
    for clip in (None, 0.5):
        ref, ref_model = _record(pl_ref, tmp_path, dict(clip=clip), dict(max_epochs=2), builder=build_manual)
        got, got_model = _record(fl, tmp_path, dict(clip=clip), dict(max_epochs=2, fused=False),
                                 builder=build_manual)
        _assert_same(ref, got)
        for (k, a), (_, b) in zip(ref_model.state_dict().items(), got_model.state_dict().items()):
            assert torch.equal(a, b), k


@pytest.mark.parametrize("case", ["sanity_check_and_accumulation", "validation_inside_epoch_plateau",
                                  "training_step_returns_none", "dict_output_and_clipping"])
def test_hook_order_without_optimizer_step_override(case, tmp_path):
    """Without an `optimizer_step` override fastlight may step the optimizer directly: same observable order."""
    model_kw, trainer_kw = FIT_CASES[case]
    skip = ("optimizer_step",)
    ref, ref_model = _record(pl_ref, tmp_path, model_kw, trainer_kw, skip=skip)
    got, got_model = _record(fl, tmp_path, model_kw, dict(trainer_kw, fused=False), skip=skip)
    _assert_same(ref, got)
    for (k, a), (_, b) in zip(ref_model.state_dict().items(), got_model.state_dict().items()):
        assert torch.equal(a, b), k
