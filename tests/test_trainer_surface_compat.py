"""Small Trainer / LightningModule behaviours Lightning's users and tests rely on, side by side with pytorch_lightning:
error types and texts for bad flags and models, `~` in default_root_dir, freeze/unfreeze's return value, hooks that
are wrapped on the instance (recorders) being called where Lightning calls them."""
import os
from functools import partial, update_wrapper

import pytest
import torch

import fastlight as fl
from _parity_helpers import build, quiet_warnings, trainer_kwargs

pl_ref = pytest.importorskip("pytorch_lightning")
quiet_warnings()

FRAMEWORKS = [pytest.param(pl_ref, id="lightning"), pytest.param(fl, id="fastlight")]


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize(("flags", "error", "match"), [
    ({"gradient_clip_val": (1, 2)}, TypeError, "`gradient_clip_val` should be an int or a float"),
    ({"gradient_clip_algorithm": "norm2"}, pl_ref.utilities.exceptions.MisconfigurationException,
     "`gradient_clip_algorithm` norm2 is invalid"),
    ({"check_val_every_n_epoch": 1.2}, pl_ref.utilities.exceptions.MisconfigurationException,
     "`check_val_every_n_epoch` should be an integer"),
])
def test_bad_flags_raise_lightnings_error(pl, flags, error, match):
    if pl is fl and error is not TypeError:
        error = fl.utilities.exceptions.MisconfigurationException
    with pytest.raises(error, match=match):
        pl.Trainer(**trainer_kwargs(".", **flags))


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize("fn", ["fit", "validate", "test", "predict"])
def test_a_model_that_is_not_a_lightning_module_is_a_type_error(pl, fn):
    trainer = pl.Trainer(**trainer_kwargs("."))
    with pytest.raises(TypeError, match="must be a `LightningModule`.*got `Linear"):
        getattr(trainer, fn)(torch.nn.Linear(2, 2))


@pytest.mark.parametrize("pl", FRAMEWORKS)
@pytest.mark.parametrize("fn", ["validate", "test", "predict"])
def test_no_model_and_none_connected_is_a_type_error(pl, fn):
    trainer = pl.Trainer(**trainer_kwargs("."))
    with pytest.raises(TypeError, match=rf"{fn}\(\)` requires a `LightningModule` when it hasn't been passed"):
        getattr(trainer, fn)()


def test_default_root_dir_expands_the_home_folder():
    ref = pl_ref.Trainer(default_root_dir="~/runs", logger=False)
    got = fl.Trainer(default_root_dir="~/runs", logger=False)
    assert got.default_root_dir == ref.default_root_dir == os.path.join(os.path.expanduser("~"), "runs")


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_freeze_and_unfreeze_return_the_module(pl):
    model = build(pl)()
    assert model.freeze() is model and not model.training
    assert not any(p.requires_grad for p in model.parameters())
    assert model.unfreeze() is model and model.training
    assert all(p.requires_grad for p in model.parameters())


def test_is_overridden_sees_through_update_wrapper_like_lightning():
    from pytorch_lightning.utilities.model_helpers import is_overridden as ref_is_overridden

    from fastlight.utilities.model_helpers import is_overridden

    for pl, check in ((pl_ref, ref_is_overridden), (fl, is_overridden)):
        class Model(build(pl)):
            pass

        Model.configure_model = None
        model = Model()
        wrapper = partial(print, "configure_model")
        update_wrapper(wrapper, model.configure_model)  # __wrapped__ = None: the hook is switched off
        model.configure_model = wrapper
        assert check("configure_model", model) is False
        wrapped = partial(print, "training_step")
        update_wrapper(wrapped, model.training_step)
        model.training_step = wrapped
        assert check("training_step", model) is True


def _recorded_fit(pl, tmp_path):
    """The module and a callback wrap every hook on the instance (as Lightning's hook-recording tests do)."""
    calls = []

    def recorder(owner, prefix, names):
        for name in names:
            original = getattr(owner, name)

            def call(*args, _name=name, _original=original, **kwargs):
                calls.append(f"{prefix}{_name}")
                return _original(*args, **kwargs)

            setattr(owner, name, call)

    model = build(pl)()
    recorder(model, "", ["configure_gradient_clipping", "clip_gradients", "on_train_epoch_end", "zero_grad",
                         "on_validation_model_zero_grad"])
    callback = pl.Callback()
    recorder(callback, "Callback.", ["on_train_epoch_end"])
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=1,
                                          num_sanity_val_steps=0, callbacks=[callback]))
    trainer.fit(model)
    return calls


def test_hooks_wrapped_on_the_instance_run_where_lightning_runs_them(tmp_path):
    ref = _recorded_fit(pl_ref, tmp_path)
    got = _recorded_fit(fl, tmp_path)
    assert got == ref
    assert got.count("clip_gradients") == 2  # the default configure_gradient_clipping calls it, value or not
    assert got.index("Callback.on_train_epoch_end") < got.index("on_train_epoch_end")


def test_configure_optimizers_returning_none_fits_without_an_optimizer_like_lightning(tmp_path):
    outcomes = {}
    for pl in (pl_ref, fl):
        calls = []

        class Model(build(pl)):
            def configure_optimizers(self):
                return None

            def training_step(self, batch, batch_idx):
                calls.append(batch_idx)
                return super().training_step(batch, batch_idx)

        model = Model()
        before = {k: v.clone() for k, v in model.state_dict().items()}
        trainer = pl.Trainer(**trainer_kwargs(tmp_path / pl.__name__, max_epochs=1, limit_train_batches=3,
                                              limit_val_batches=0))
        with pytest.warns(UserWarning, match="will run with no optimizer"):
            trainer.fit(model)
        assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
        path = str(tmp_path / f"{pl.__name__}.ckpt")
        trainer.save_checkpoint(path)
        ckpt = torch.load(path, weights_only=False)
        outcomes[pl.__name__] = (calls, trainer.global_step, repr(trainer.optimizers[0]), ckpt["optimizer_states"])
    assert outcomes["fastlight"] == outcomes["pytorch_lightning"] == ([0, 1, 2], 3, "No Optimizer", [{}])


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_lightning_optimizer_reads_the_wrapped_optimizers_state_live(pl):
    from copy import deepcopy

    model = torch.nn.Linear(3, 4)
    first = torch.optim.Adam(model.parameters(), lr=0.1)
    first.param_groups[0]["lr"] = 1.0
    saved = deepcopy(first.state_dict())
    second = torch.optim.Adam(model.parameters(), lr=100)
    wrapped = pl.core.optimizer.LightningOptimizer(second)
    second.load_state_dict(saved)  # replaces the optimizer's param_groups list
    assert wrapped.param_groups[0]["lr"] == 1.0
    third = torch.optim.Adam(model.parameters(), lr=100)
    wrapped = pl.core.optimizer.LightningOptimizer(third)
    wrapped.load_state_dict(saved)
    assert wrapped.param_groups[0]["lr"] == 1.0
    if pl is fl:  # fastlight loads into the wrapped optimizer itself (Lightning's wrapper keeps its own copy then)
        assert third.param_groups[0]["lr"] == 1.0
        assert wrapped.state is third.state and wrapped.defaults is third.defaults


@pytest.mark.parametrize("fused", [True, False])
def test_optimizer_step_returns_the_closures_loss_like_lightning(tmp_path, fused):
    returned = {}
    for pl in (pl_ref, fl):
        seen = []

        class Model(build(pl)):
            def training_step(self, batch, batch_idx):
                loss = super().training_step(batch, batch_idx)
                seen.append(loss.detach())
                return loss

            def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
                out = optimizer.step(closure=optimizer_closure)
                returned.setdefault(pl.__name__, []).append(bool(torch.equal(out, seen[-1])))

        extra = {"fused": fused} if pl is fl else {}
        _ = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0, **extra))
        _.fit(Model())
    assert returned["fastlight"] == returned["pytorch_lightning"] == [True, True]


def test_lightning_optimizer_pickles_as_its_wrapped_class():
    # Lightning's per-instance class cannot be pickled; fastlight's rewraps the pickled optimizer, so a trainer that
    # holds its optimizers (reached from a pickled callback, e.g. a progress bar) pickles
    import pickle

    model = torch.nn.Linear(3, 4)
    wrapped = fl.core.optimizer.LightningOptimizer(torch.optim.SGD(model.parameters(), lr=0.25, momentum=0.5))
    wrapped._trainer = "the trainer"
    copy = pickle.loads(pickle.dumps(wrapped))
    assert type(copy).__name__ == "LightningSGD" and isinstance(copy, torch.optim.SGD)
    assert isinstance(copy, fl.core.optimizer.LightningOptimizer)
    assert copy.param_groups[0]["lr"] == 0.25 and copy.param_groups[0]["momentum"] == 0.5
    assert copy._trainer == "the trainer" and copy.optimizer is not wrapped.optimizer


@pytest.mark.parametrize("who", ["datamodule", "module", "both", "datamodule_wrapped"])
def test_batch_transfer_hooks_run_on_lightnings_choice_of_owner_with_its_warnings(who, tmp_path):
    """The datamodule's on_before_batch_transfer runs when the datamodule overrides it (also when the module does,
    with a warning); otherwise the module's (a warning when the module overrides it and a datamodule is attached).
    A datamodule hook only wrapped on the instance (functools.update_wrapper) overrides nothing."""
    import warnings

    def run(pl):
        calls = []

        class Module(build(pl)):
            pass

        class DataModule(pl.LightningDataModule):
            def __init__(self, module):
                super().__init__()
                self.module = module

            def train_dataloader(self):
                return self.module.train_dataloader()

        def record(owner):
            def on_before_batch_transfer(self, batch, dataloader_idx):
                calls.append(owner)
                return batch

            return on_before_batch_transfer

        if who in ("module", "both"):
            Module.on_before_batch_transfer = record("module")
        if who in ("datamodule", "both"):
            DataModule.on_before_batch_transfer = record("datamodule")
        model = Module()
        dm = DataModule(model)
        if who == "datamodule_wrapped":
            original = dm.on_before_batch_transfer
            wrapper = partial(lambda batch, idx: (calls.append("wrapper"), original(batch, idx))[1])
            update_wrapper(wrapper, original)
            dm.on_before_batch_transfer = wrapper
        trainer = pl.Trainer(**trainer_kwargs(tmp_path / pl.__name__, max_epochs=1, limit_train_batches=2,
                                              limit_val_batches=0))
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            trainer.fit(model, datamodule=dm)
        said = sorted({str(w.message) for w in caught if "have overridden `on_before_batch_transfer`" in str(w.message)})
        return calls, said

    from pytorch_lightning.trainer.connectors import data_connector

    data_connector.warning_cache.clear()  # Lightning warns once per process: an earlier test may have used it up
    ref, got = run(pl_ref), run(fl)
    assert got == ref
    assert ref[0] == {"datamodule": ["datamodule"] * 2, "module": ["module"] * 2, "both": ["datamodule"] * 2,
                      "datamodule_wrapped": []}[who]
    assert len(ref[1]) == (1 if who in ("module", "both") else 0)


def test_persistent_dataloader_workers_are_shut_down_when_the_fit_ends_like_lightning(tmp_path):
    from torch.utils.data import DataLoader, TensorDataset

    for pl in (pl_ref, fl):
        loaders = [DataLoader(TensorDataset(torch.randn(16, 8), torch.randint(0, 3, (16,))), batch_size=4,
                              num_workers=1, persistent_workers=True) for _ in range(2)]
        trainer = pl.Trainer(**trainer_kwargs(tmp_path / pl.__name__, max_epochs=2, limit_val_batches=1))
        trainer.fit(build(pl)(), *loaders)
        assert [dl._iterator for dl in loaders] == [None, None], pl.__name__
