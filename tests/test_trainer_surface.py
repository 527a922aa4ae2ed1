"""Trainer attributes and context managers a Lightning user reaches for, checked against pytorch_lightning."""
import pytest
import torch
from torch import nn

import fastlight as fl
from _parity_helpers import build, quiet_warnings, trainer_kwargs

pl_ref = pytest.importorskip("pytorch_lightning")
quiet_warnings()


def _both(**kw):
    return (pl_ref.Trainer(**trainer_kwargs(".", **kw)), fl.Trainer(**trainer_kwargs(".", **kw)))


def test_config_flags_read_back_like_lightning(tmp_path):
    kw = dict(limit_train_batches=3, limit_val_batches=0.5, val_check_interval=2, check_val_every_n_epoch=None,
              log_every_n_steps=7, min_epochs=2, min_steps=5, num_sanity_val_steps=1, overfit_batches=0.0,
              reload_dataloaders_every_n_epochs=2, barebones=False, max_epochs=3, max_steps=40)
    ref, got = _both(**kw)
    for name in list(kw) + ["fast_dev_run"]:
        assert getattr(got, name) == getattr(ref, name), name
    ref, got = _both(fast_dev_run=2)
    for name in ("fast_dev_run", "limit_train_batches", "limit_val_batches", "num_sanity_val_steps", "max_epochs"):
        assert getattr(got, name) == getattr(ref, name), name


def test_early_stopping_callbacks_lists_every_early_stopping():
    ref = pl_ref.Trainer(accelerator="cpu", callbacks=[pl_ref.callbacks.EarlyStopping("a"),
                                                       pl_ref.callbacks.EarlyStopping("b")])
    got = fl.Trainer(accelerator="cpu", callbacks=[fl.callbacks.EarlyStopping("a"), fl.callbacks.EarlyStopping("b")])
    assert [c.monitor for c in got.early_stopping_callbacks] == [c.monitor for c in ref.early_stopping_callbacks]
    assert got.early_stopping_callback.monitor == "a"
    assert fl.Trainer(accelerator="cpu").early_stopping_callbacks == []


@pytest.mark.parametrize("precision", ["32-true", "64-true", "bf16-true", "16-true"])
def test_init_module_creates_parameters_like_lightning(precision):
    made = []
    for trainer in _both(precision=precision):
        torch.manual_seed(0)
        with trainer.init_module():
            made.append(nn.Linear(5, 3))
    ref, got = made
    assert got.weight.dtype == ref.weight.dtype and got.weight.device == ref.weight.device
    torch.testing.assert_close(got.weight, ref.weight, rtol=0, atol=0)
    assert torch.get_default_dtype() == torch.float32  # restored


def test_init_module_empty_init_skips_initializers():
    trainer = fl.Trainer(accelerator="cpu")
    t = torch.zeros(4)
    with trainer.init_module(empty_init=True):
        nn.init.constant_(t, 5.0)
        nn.init.normal_(tensor=t)
    assert torch.count_nonzero(t) == 0
    with trainer.init_module(empty_init=False):
        nn.init.constant_(t, 5.0)
    assert torch.all(t == 5.0)


def test_16_true_trains_like_lightning(tmp_path):
    weights = []
    for pl in (pl_ref, fl):
        torch.manual_seed(0)
        model = build(pl)(optimizer="sgd", lr=0.1)
        extra = dict(fused=False) if pl is fl else {}
        pl.Trainer(**trainer_kwargs(tmp_path / pl.__name__, precision="16-true", max_epochs=1, **extra)).fit(model)
        weights.append(model.state_dict())
    for k, v in weights[0].items():
        assert weights[1][k].dtype == v.dtype == torch.float16
        torch.testing.assert_close(weights[1][k], v, rtol=0, atol=0, msg=k)


def test_state_stage_follows_lightning_through_a_fit_with_validation(tmp_path):
    seen = {}
    for pl in (pl_ref, fl):
        stages = seen[pl.__name__] = []

        class Probe(pl.Callback):
            def on_train_batch_start(self, trainer, *args):
                stages.append(("train_batch", str(getattr(trainer.state.stage, "value", trainer.state.stage))))

            def on_validation_batch_start(self, trainer, *args):
                stages.append(("val_batch", str(getattr(trainer.state.stage, "value", trainer.state.stage))))

        model = build(pl)(n_train=16, n_val=8)
        pl.Trainer(**trainer_kwargs(tmp_path / pl.__name__, max_epochs=1, val_check_interval=1,
                                    num_sanity_val_steps=1, callbacks=[Probe()])).fit(model)
    assert seen["fastlight"] == seen["pytorch_lightning"]
    assert ("val_batch", "validate") in seen["fastlight"] and ("val_batch", "sanity_check") in seen["fastlight"]
