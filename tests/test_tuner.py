"""Tuner (lr_find, scale_batch_size) and the LearningRateFinder / BatchSizeFinder callbacks: the same user code and
seed under pytorch_lightning and fastlight (fused=False: bit-identical numbers) give the same lr sequence, losses,
suggestion and batch size, and the model and trainer are put back after the search."""
import os
import sys

import pytest
import torch

pl_ref = pytest.importorskip("pytorch_lightning")
from pytorch_lightning.tuner import Tuner as RefTuner  # noqa: E402

import fastlight as fl  # noqa: E402
from fastlight.tuner import Tuner  # noqa: E402
from fastlight.utilities.exceptions import MisconfigurationException  # noqa: E402
from _parity_helpers import build, quiet_warnings, trainer_kwargs  # noqa: E402

quiet_warnings()

TUNERS = {pl_ref: RefTuner, fl: Tuner}


def _setup(pl, tmp_path, model_kw=None, **trainer_kw):
    torch.manual_seed(1234)
    model = build(pl)(**(model_kw or {}))
    kw = trainer_kwargs(tmp_path, max_epochs=3, **trainer_kw)
    if pl is fl:
        kw["fused"] = trainer_kw.get("fused", False)
    return model, pl.Trainer(**kw)


def _lr_find(pl, tmp_path, model_kw=None, trainer_kw=None, **find_kw):
    model, trainer = _setup(pl, tmp_path, model_kw, **(trainer_kw or {}))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    finder = TUNERS[pl](trainer).lr_find(model, **find_kw)
    return model, trainer, finder, before


def _both(tmp_path, fn, **kw):
    return fn(pl_ref, tmp_path / "pl", **kw), fn(fl, tmp_path / "fl", **kw)


@pytest.mark.parametrize("mode", ["exponential", "linear"])
def test_lr_find_results_and_suggestion_match_lightning(tmp_path, mode):
    find_kw = dict(num_training=20, mode=mode, min_lr=1e-4, max_lr=1.0, update_attr=False)
    (_, ref_tr, ref, _), (model, trainer, got, before) = _both(
        tmp_path, _lr_find, model_kw=dict(optimizer="adam", n_train=80), **find_kw)
    assert got.results["lr"] == ref.results["lr"]  # the same schedule, exactly
    assert len(got.results["lr"]) == len(got.results["loss"]) == len(ref.results["loss"])
    torch.testing.assert_close(torch.tensor(got.results["loss"]), torch.tensor(ref.results["loss"]), rtol=1e-6,
                               atol=1e-7)
    assert got.suggestion() == ref.suggestion()
    assert got.suggestion(skip_begin=2, skip_end=3) == ref.suggestion(skip_begin=2, skip_end=3)
    # the weights and the trainer's counters are put back; the trainer ended the fit cleanly
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert trainer.global_step == ref_tr.global_step == 0
    assert trainer.current_epoch == ref_tr.current_epoch == 0
    assert trainer.state.status == "finished"
    assert not [f for f in os.listdir(tmp_path / "fl") if f.startswith(".lr_find")]  # temporary checkpoint removed


def test_lr_find_early_stop_on_divergence_matches_lightning(tmp_path):
    find_kw = dict(num_training=40, min_lr=1e-3, max_lr=1e4, update_attr=False, early_stop_threshold=2.0)
    (_, _, ref, _), (_, _, got, _) = _both(tmp_path, _lr_find, model_kw=dict(n_train=400), **find_kw)
    assert len(ref.results["lr"]) < 40  # it did stop early
    assert got.results["lr"] == ref.results["lr"]
    torch.testing.assert_close(torch.tensor(got.results["loss"]), torch.tensor(ref.results["loss"]), rtol=1e-5,
                               atol=1e-6)


def test_lr_find_update_attr_then_fit_gives_lightning_weights(tmp_path):
    def run(pl, path):
        model, trainer, finder, _ = _lr_find(pl, path, model_kw=dict(optimizer="adam", n_train=80),
                                             num_training=20, min_lr=1e-4, max_lr=0.5)
        suggested = finder.suggestion()
        assert model.hparams.lr == suggested  # update_attr wrote `lr` (it lives in hparams)
        trainer.fit(model)
        return model, trainer, suggested

    (ref_model, ref_tr, ref_lr), (model, trainer, lr) = _both(tmp_path, run)
    assert lr == ref_lr
    assert trainer.global_step == ref_tr.global_step
    for k, v in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_learning_rate_finder_callback_in_fit_matches_lightning(tmp_path):
    def run(pl, path):
        cb = pl.callbacks.LearningRateFinder(num_training_steps=15, min_lr=1e-4, max_lr=0.5)
        model, trainer = _setup(pl, path, dict(n_train=80), callbacks=[cb])
        trainer.fit(model)
        return model, trainer, cb

    (ref_model, ref_tr, ref_cb), (model, trainer, cb) = _both(tmp_path, run)
    assert cb.optimal_lr.results["lr"] == ref_cb.optimal_lr.results["lr"]
    assert cb.optimal_lr.suggestion() == ref_cb.optimal_lr.suggestion()
    assert trainer.optimizers[0].param_groups[0]["lr"] == ref_tr.optimizers[0].param_groups[0]["lr"]
    assert trainer.global_step == ref_tr.global_step
    for k, v in ref_model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v), k


def test_lr_find_drives_the_fused_optimizer(tmp_path):
    model, trainer, finder, before = _lr_find(fl, tmp_path, model_kw=dict(optimizer="adam", n_train=80),
                                              trainer_kw=dict(fused=True), num_training=20, min_lr=1e-4,
                                              max_lr=1.0, update_attr=False)
    _, _, ref, _ = _lr_find(fl, tmp_path / "plain", model_kw=dict(optimizer="adam", n_train=80),
                            num_training=20, min_lr=1e-4, max_lr=1.0, update_attr=False)
    assert finder.results["lr"] == ref.results["lr"]
    # the losses follow the rising lr (a schedule on an optimizer the loop does not step would leave them flat)
    torch.testing.assert_close(torch.tensor(finder.results["loss"]), torch.tensor(ref.results["loss"]), rtol=1e-4,
                               atol=1e-5)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_lr_finder_plot_without_matplotlib_says_so(tmp_path, monkeypatch):
    _, _, finder, _ = _lr_find(fl, tmp_path, num_training=5, update_attr=False)
    # hide matplotlib (the test extra installs it): an import of it now fails as if it were missing
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(MisconfigurationException, match="Matplotlib"):
        finder.plot()


def test_lr_find_errors_like_lightning(tmp_path):
    model, trainer = _setup(fl, tmp_path, dict())
    with pytest.raises(AttributeError, match="my_lr"):
        Tuner(trainer).lr_find(model, attr_name="my_lr")
    with pytest.raises(MisconfigurationException, match="method='fit'"):
        Tuner(trainer).lr_find(model, method="validate")
    with pytest.raises(ValueError, match="mode"):
        Tuner(trainer).lr_find(model, mode="cubic")

    class TwoOptimizers(build(fl)):
        def configure_optimizers(self):
            return [torch.optim.SGD(self.net[0].parameters(), lr=0.1), torch.optim.SGD(self.net[3].parameters(), lr=0.1)]

        def __init__(self, **kw):
            super().__init__(**kw)
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            return None

    _, trainer2 = _setup(fl, tmp_path / "two", dict())
    model2 = TwoOptimizers()
    with pytest.raises(MisconfigurationException, match="single optimizer"):
        Tuner(trainer2).lr_find(model2, update_attr=False)


# ---------------------------------------------------------------------------------------------- batch size
OOM_ABOVE = 23


def _oom_model_cls(pl):
    class OOMModel(build(pl)):
        def training_step(self, batch, batch_idx):
            if batch[0].shape[0] > OOM_ABOVE:
                raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB (fake)")
            return super().training_step(batch, batch_idx)

    return OOMModel


def _scale(pl, tmp_path, **scale_kw):
    torch.manual_seed(1234)
    model = _oom_model_cls(pl)(n_train=200)
    kw = trainer_kwargs(tmp_path, max_epochs=2)
    if pl is fl:
        kw["fused"] = False
    trainer = pl.Trainer(**kw)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    size = TUNERS[pl](trainer).scale_batch_size(model, **scale_kw)
    return model, trainer, size, before


@pytest.mark.parametrize("mode", ["power", "binsearch"])
def test_scale_batch_size_matches_lightning(tmp_path, mode):
    (ref_model, ref_tr, ref_size, _), (model, trainer, size, before) = _both(
        tmp_path, _scale, mode=mode, steps_per_trial=2)
    assert size == ref_size
    assert model.hparams.batch_size == ref_model.hparams.batch_size == size
    assert size <= OOM_ABOVE
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert trainer.global_step == ref_tr.global_step == 0
    assert not [f for f in os.listdir(tmp_path / "fl") if f.startswith(".scale_batch_size")]


def test_batch_size_finder_callback_then_fit_uses_the_size(tmp_path):
    def run(pl, path):
        torch.manual_seed(1234)
        model = _oom_model_cls(pl)(n_train=200)
        kw = trainer_kwargs(path, max_epochs=1, callbacks=[pl.callbacks.BatchSizeFinder(mode="binsearch",
                                                                                         steps_per_trial=1)])
        if pl is fl:
            kw["fused"] = False
        trainer = pl.Trainer(**kw)
        trainer.fit(model)
        return model, trainer

    (ref_model, ref_tr), (model, trainer) = _both(tmp_path, run)
    assert model.hparams.batch_size == ref_model.hparams.batch_size
    assert trainer.global_step == ref_tr.global_step  # the fit ran with the size found


def test_scale_batch_size_errors(tmp_path):
    torch.manual_seed(0)
    model = build(fl)()
    trainer = fl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1))
    with pytest.raises(ValueError, match="mode"):
        Tuner(trainer).scale_batch_size(model, mode="triple")
    with pytest.raises(MisconfigurationException, match="not_there"):
        Tuner(trainer).scale_batch_size(model, batch_arg_name="not_there")
    with pytest.raises(ValueError, match="method 'tune' is invalid"):
        Tuner(trainer).scale_batch_size(model, method="tune")
    from torch.utils.data import DataLoader
    from _parity_helpers import make_data

    with pytest.raises(MisconfigurationException, match="passed directly"):
        Tuner(trainer).scale_batch_size(model, train_dataloaders=DataLoader(make_data(), batch_size=4))


def test_is_oom_error_recognizes_allocator_messages():
    from fastlight.callbacks._batch_scaling import is_oom_error

    assert is_oom_error(RuntimeError("CUDA out of memory. Tried to allocate"))
    assert is_oom_error(RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"))
    assert not is_oom_error(RuntimeError("shape mismatch"))
    assert not is_oom_error(ValueError("CUDA out of memory"))
