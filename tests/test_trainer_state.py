"""What user code reads of the Trainer's state, side by side with pytorch_lightning: `trainer.state` and its enums,
the stage passed to setup/teardown, Lightning's loop attributes (fit_loop.epoch_loop.batch_progress, epoch_progress,
optim_progress, val_loop, the evaluation loops' batch_progress, fit_loop.state_dict), Trainer property values under
several flag combinations, hooks set to None, and time-based val_check_interval."""
import datetime
import pickle
from unittest.mock import patch

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight.trainer.states import RunningStage, TrainerFn, TrainerState, TrainerStatus

pl_ref = pytest.importorskip("pytorch_lightning")

QUIET = dict(enable_progress_bar=False, enable_model_summary=False)


def _module_cls(pl):
    class Model(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)
            self.calls = []

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).sum()

        def validation_step(self, batch, batch_idx):
            self.calls.append("validation_step")
            self.log("v", self.layer(batch[0]).sum())

        def test_step(self, batch, batch_idx):
            self.calls.append("test_step")
            self.log("t", self.layer(batch[0]).sum())

        def predict_step(self, batch, batch_idx):
            return self.layer(batch[0])

        def configure_optimizers(self):
            opt = torch.optim.SGD(self.parameters(), lr=0.1)
            return [opt], [torch.optim.lr_scheduler.StepLR(opt, 1)]

        def train_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=2)

        def val_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(6, 4)), batch_size=2)

        def test_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(6, 4)), batch_size=2)

        def predict_dataloader(self):
            return DataLoader(TensorDataset(torch.randn(6, 4)), batch_size=2)

    return Model


# ----------------------------------------------------------------------------------------------------- the enums
def test_state_enums_are_lightnings_str_enums():
    assert TrainerFn.FITTING == "fit" and TrainerFn.FITTING == "FIT" and "fit" == TrainerFn.FITTING
    assert {TrainerFn.FITTING: 1}["fit"] == 1 and hash(RunningStage.TRAINING) == hash("train")
    assert isinstance(TrainerFn.TESTING, str)
    assert RunningStage.SANITY_CHECKING.evaluating and not RunningStage.TRAINING.evaluating
    assert RunningStage.SANITY_CHECKING.dataloader_prefix == "val" and RunningStage.TESTING.dataloader_prefix == "test"
    assert TrainerStatus.INTERRUPTED.stopped and not TrainerStatus.RUNNING.stopped
    assert TrainerFn.from_str("fitting") is TrainerFn.FITTING
    assert TrainerFn.from_str("predict", source="value") is TrainerFn.PREDICTING
    with pytest.raises(ValueError, match="Invalid match"):
        TrainerFn.from_str("nope", source="any")
    for ours, theirs in ((TrainerFn, pl_ref.trainer.states.TrainerFn),
                         (RunningStage, pl_ref.trainer.states.RunningStage),
                         (TrainerStatus, pl_ref.trainer.states.TrainerStatus)):
        assert [(m.name, m.value) for m in ours] == [(m.name, m.value) for m in theirs]
        assert all(m == theirs[m.name] for m in ours)


def test_trainer_state_stores_strings_as_enum_members_and_refuses_unknown_values():
    state = TrainerState()
    assert state.status is TrainerStatus.INITIALIZING and state.fn is None and not state.finished
    state.fn, state.stage, state.status = "fit", "sanity_check", "finished"
    assert state.fn is TrainerFn.FITTING and state.stage is RunningStage.SANITY_CHECKING and state.finished
    assert state.stopped
    with pytest.raises(ValueError, match="trainer.state.stage"):
        state.stage = "training"
    assert pickle.loads(pickle.dumps(state)) == state


# ----------------------------------------------------------------------------------------- state and loop views
def _progress_recorder(pl, rec):
    class Recorder(pl.Callback):
        def _snap(self, trainer, where):
            fit_loop = trainer.fit_loop
            epoch_loop = fit_loop.epoch_loop
            rec.append((
                where, repr(trainer.state.fn), repr(trainer.state.stage), repr(trainer.state.status),
                epoch_loop.batch_progress.state_dict(), fit_loop.epoch_progress.state_dict(),
                epoch_loop.val_loop.batch_progress.state_dict(), epoch_loop._batches_that_stepped,
                epoch_loop.automatic_optimization.optim_progress.optimizer_steps,
                epoch_loop.automatic_optimization.optim_progress.optimizer.step.total.completed,
                epoch_loop.scheduler_progress.state_dict(), epoch_loop.batch_idx, epoch_loop.total_batch_idx,
                trainer.validate_loop.batch_progress.state_dict(), trainer.test_loop.batch_progress.state_dict(),
                trainer.predict_loop.batch_progress.state_dict(),
                fit_loop.max_epochs, fit_loop.min_epochs, fit_loop.max_steps, fit_loop.min_steps,
                trainer.is_last_batch,
            ))

        def setup(self, trainer, pl_module, stage):
            rec.append(("setup", repr(stage), type(stage).__name__))

        def teardown(self, trainer, pl_module, stage):
            rec.append(("teardown", repr(stage)))

        def on_train_batch_end(self, trainer, *args):
            self._snap(trainer, "on_train_batch_end")

        def on_train_epoch_end(self, trainer, *args):
            self._snap(trainer, "on_train_epoch_end")

        def on_validation_batch_end(self, trainer, *args):
            self._snap(trainer, "on_validation_batch_end")

        def on_validation_end(self, trainer, *args):
            self._snap(trainer, "on_validation_end")

        def on_test_batch_end(self, trainer, *args):
            self._snap(trainer, "on_test_batch_end")

        def on_predict_batch_end(self, trainer, *args):
            self._snap(trainer, "on_predict_batch_end")

        def on_train_end(self, trainer, *args):
            self._snap(trainer, "on_train_end")

    return Recorder()


def _record_run(pl, tmp_path):
    rec = []
    trainer = pl.Trainer(max_epochs=2, callbacks=[_progress_recorder(pl, rec)], logger=False,
                         enable_checkpointing=False, limit_val_batches=2, accumulate_grad_batches=2,
                         default_root_dir=tmp_path, **QUIET)
    rec.append(("init", repr(trainer.state.status), trainer.state.fn, trainer.state.finished, trainer.max_epochs,
                trainer.min_epochs))
    model = _module_cls(pl)()
    trainer.fit(model)
    rec.append(("after fit", repr(trainer.state), trainer.fit_loop.done, trainer.fit_loop.state_dict(),
                trainer.fit_loop.epoch_loop.done, trainer.max_epochs, trainer.min_epochs))
    trainer.validate(model, verbose=False)
    trainer.test(model, verbose=False)
    trainer.predict(model)
    rec.append(("end", repr(trainer.state), trainer.state.finished, trainer.interrupted))
    return rec


def test_state_and_loop_progress_seen_by_callbacks_match_lightning(tmp_path):
    ref = _record_run(pl_ref, tmp_path / "pl")
    got = _record_run(fl, tmp_path / "fl")
    assert len(got) == len(ref)
    for expected, actual in zip(ref, got):
        assert actual == expected


def test_fit_loop_state_dict_round_trips_into_a_new_trainer(tmp_path):
    trainer = fl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, **QUIET)
    trainer.fit(_module_cls(fl)())
    state = trainer.fit_loop.state_dict()
    other = fl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, **QUIET)
    other.fit_loop.load_state_dict(state)
    # the saved epoch had finished: nothing restarts (Lightning's `restarting` is for an unfinished epoch or a fit
    # counting steps), the same state loaded into Lightning's loop says so too
    reference = pl_ref.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, **QUIET)
    reference.fit_loop.load_state_dict(state)
    assert other.fit_loop.restarting is reference.fit_loop.restarting is False
    assert other.fit_loop.epoch_progress.state_dict() == trainer.fit_loop.epoch_progress.state_dict()
    assert other.fit_loop.epoch_loop.batch_progress.total.completed == 4
    assert other.fit_loop.state_dict() == state
    model = _module_cls(fl)()
    other.fit(model)
    assert other.current_epoch == 2 and other.global_step == 8  # continued from epoch 1


# ------------------------------------------------------------------------------------------ Trainer properties
PROPERTIES = [
    "max_epochs", "min_epochs", "max_steps", "min_steps", "fast_dev_run", "num_training_batches", "num_val_batches",
    "num_sanity_val_batches", "val_check_batch", "val_check_interval", "check_val_every_n_epoch",
    "limit_train_batches", "limit_val_batches", "limit_test_batches", "limit_predict_batches", "overfit_batches",
    "num_sanity_val_steps", "log_every_n_steps", "accumulate_grad_batches", "gradient_clip_val",
    "reload_dataloaders_every_n_epochs", "current_epoch", "global_step", "estimated_stepping_batches",
    "enable_validation", "sanity_checking", "training", "testing", "validating", "predicting", "interrupted",
    "is_last_batch", "num_devices", "num_nodes", "world_size", "global_rank", "is_global_zero", "precision",
    "barebones", "logger", "loggers", "log_dir", "checkpoint_callback", "early_stopping_callback",
    "progress_bar_callback", "optimizers", "callback_metrics", "logged_metrics", "should_stop",
]

FLAG_CASES = {
    "defaults": dict(),
    "fast_dev_run_true": dict(fast_dev_run=True),
    "fast_dev_run_3": dict(fast_dev_run=3),
    "max_steps": dict(max_steps=5),
    "val_check_fraction": dict(max_epochs=2, limit_train_batches=3, val_check_interval=0.5),
    "overfit": dict(overfit_batches=2, max_epochs=1),
    "unlimited_epochs": dict(max_epochs=-1, max_steps=4),
    "min_epochs": dict(min_epochs=2, max_epochs=3),
    "min_steps": dict(min_steps=3, max_epochs=1),
    "barebones": dict(barebones=True, max_epochs=1),
    "no_validation": dict(limit_val_batches=0, max_epochs=1),
    "val_check_int": dict(max_epochs=1, val_check_interval=2),
}


def _plain(value, root):
    if isinstance(value, (list, tuple)):
        return type(value).__name__, [_plain(v, root) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v, root) for k, v in value.items()}
    if isinstance(value, torch.Tensor):
        return "Tensor", tuple(value.shape)  # values depend on random weights and data
    if isinstance(value, str):
        return type(value).__name__, str(getattr(value, "value", value)).replace(str(root), "ROOT")
    if isinstance(value, (int, float, bool, type(None))):
        return type(value).__name__, value
    return type(value).__name__


def _properties(trainer, root):
    out = {}
    for name in PROPERTIES:
        try:
            out[name] = _plain(getattr(trainer, name), root)
        except Exception as err:  # noqa: BLE001 - the error type is part of what is compared
            out[name] = ("raises", type(err).__name__)
    return out


@pytest.mark.parametrize("case", [
    # the defaults train max_epochs=1000 epochs under both frameworks (about a minute)
    pytest.param(c, marks=pytest.mark.slow) if c == "defaults" else c for c in sorted(FLAG_CASES)
])
def test_trainer_property_values_match_lightning(case, tmp_path):
    seen = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        root = tmp_path / name
        trainer = pl.Trainer(default_root_dir=root, **QUIET, **FLAG_CASES[case])
        before = _properties(trainer, root)
        trainer.fit(_module_cls(pl)())
        seen[name] = (before, _properties(trainer, root))
    for when, expected, actual in zip(("before fit", "after fit"), seen["pl"], seen["fl"]):
        diffs = {k: (expected[k], actual[k]) for k in PROPERTIES if expected[k] != actual[k]}
        assert not diffs, f"{when}: property (lightning, fastlight): {diffs}"


# --------------------------------------------------------------------------------------------- hooks set to None
@pytest.mark.parametrize("attr,entry", [
    ("val_dataloader", "fit"), ("validation_step", "fit"), ("val_dataloader", "validate"),
    ("test_dataloader", "test"), ("predict_dataloader", "predict"), ("train_dataloader", "fit"),
])
def test_a_hook_set_to_none_is_no_hook(attr, entry, tmp_path):
    outcome = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        model = _module_cls(pl)()
        setattr(model, attr, None)
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path,
                             **QUIET)
        try:
            getattr(trainer, entry)(model)
            outcome[name] = ("ran", model.calls, trainer.num_val_batches, trainer.enable_validation)
        except Exception as err:  # noqa: BLE001
            outcome[name] = ("raised", type(err).__name__, "Found None" in str(err))
    assert outcome["fl"] == outcome["pl"]


# ------------------------------------------------------------------------------------ time-based val_check_interval
@pytest.mark.parametrize("interval,every_n_epochs", [
    ("00:00:00:03", 1), ({"seconds": 5}, None), (datetime.timedelta(seconds=4), 2),
])
def test_time_based_val_check_interval_validates_when_lightning_does(interval, every_n_epochs, tmp_path):
    seen = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        clock = {"t": 0}

        def tick():
            clock["t"] += 1  # every reading of the clock is one second later
            return clock["t"]

        with patch("time.monotonic", side_effect=tick):
            model = _module_cls(pl)()
            trainer = pl.Trainer(max_epochs=3, logger=False, enable_checkpointing=False, default_root_dir=tmp_path,
                                 val_check_interval=interval, check_val_every_n_epoch=every_n_epochs,
                                 limit_val_batches=1, num_sanity_val_steps=0, **QUIET)
            steps = []
            model.on_validation_start = lambda: steps.append(trainer.global_step)
            trainer.fit(model)
        seen[name] = (steps, trainer.val_check_batch,
                      trainer.fit_loop.epoch_loop.val_loop.batch_progress.total.completed)
    assert seen["fl"] == seen["pl"]
    assert seen["fl"][0], "validation ran"


@pytest.mark.parametrize("bad,match", [("1:2:3", "DD:HH:MM:SS"), ("00:00:aa:01", "Non-integer"),
                                       ({"fortnights": 1}, "fortnights")])
def test_time_based_val_check_interval_rejects_bad_values(bad, match):
    with pytest.raises(ValueError, match=match):
        fl.Trainer(val_check_interval=bad)


def test_float_val_check_interval_needs_an_epoch_period():
    with pytest.raises(ValueError, match="check_val_every_n_epoch=None"):
        fl.Trainer(val_check_interval=0.5, check_val_every_n_epoch=None)


# ------------------------------------------------------------------------------- LightningDataModule.from_datasets
def test_datamodule_from_datasets_without_a_val_set_and_its_str(tmp_path):
    data = TensorDataset(torch.randn(8, 4))
    outcome = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        dm = pl.LightningDataModule.from_datasets(data, batch_size=2)
        several = pl.LightningDataModule.from_datasets(data, val_dataset=[data, data], test_dataset=data)
        model = _module_cls(pl)()
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path,
                             **QUIET)
        trainer.fit(model, datamodule=dm)
        outcome[name] = (str(dm), str(several), model.calls, trainer.num_val_batches, trainer.global_step)
    assert outcome["fl"] == outcome["pl"]
    assert outcome["fl"][2] == [] and outcome["fl"][4] == 4


# --------------------------------------------------------------------------- training_step(self, dataloader_iter)
def _fetching_module_cls(pl, fetches_per_step):
    class Fetching(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.record = []

        def training_step(self, dataloader_iter):
            for _ in range(fetches_per_step):
                batch, batch_idx, dataloader_idx = next(dataloader_iter)
                self.record.append(("fetched", batch_idx, dataloader_idx, batch[0].device.type))
            return self.layer(batch[0]).sum()

        def on_train_batch_start(self, batch, batch_idx):
            self.record.append(("start", batch_idx, None if batch is None else tuple(batch[0].shape)))

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.record.append(("end", batch_idx, self.trainer.is_last_batch, round(float(outputs["loss"]), 4)))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

        def train_dataloader(self):
            gen = torch.Generator().manual_seed(0)
            return DataLoader(TensorDataset(torch.randn(10, 4, generator=gen)), batch_size=2)

    return Fetching


@pytest.mark.parametrize("fetches_per_step", [1, 2])
def test_training_step_with_dataloader_iter_fetches_its_batches(fetches_per_step, tmp_path):
    seen = {}
    for name, pl in (("pl", pl_ref), ("fl", fl)):
        torch.manual_seed(0)
        model = _fetching_module_cls(pl, fetches_per_step)()
        trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, default_root_dir=tmp_path,
                             **QUIET)
        trainer.fit(model)
        seen[name] = (model.record, trainer.global_step, trainer.fit_loop.epoch_loop.batch_progress.state_dict(),
                      [p.detach().tolist() for p in model.parameters()])
    assert seen["fl"] == seen["pl"]


@pytest.mark.parametrize("accumulate", [1, 2])
def test_automatic_optimization_run_and_make_closure_step_as_lightning(accumulate, tmp_path):
    """`trainer.fit_loop.epoch_loop.automatic_optimization.run(optimizer, batch_idx, kwargs)` (tests and tools
    step a batch by hand after a fit) and `_make_closure(kwargs, optimizer, batch_idx)`: same outputs, weights,
    gradients and step counts as Lightning's."""
    seen = []
    for pl in (pl_ref, fl):
        torch.manual_seed(0)
        model = _module_cls(pl)()
        trainer = pl.Trainer(default_root_dir=tmp_path, max_epochs=1, limit_val_batches=0, logger=False,
                             enable_checkpointing=False, accumulate_grad_batches=accumulate, **QUIET)
        trainer.fit(model)
        trainer.state.stage = RunningStage.TRAINING
        batch = (torch.arange(8.0).reshape(2, 4),)
        automatic = trainer.fit_loop.epoch_loop.automatic_optimization
        out = automatic.run(trainer.optimizers[0], 0, {"batch": batch, "batch_idx": 0})
        closure_loss = automatic._make_closure({"batch": batch, "batch_idx": 1}, trainer.optimizers[0], 1)()
        seen.append((sorted(out), out["loss"].clone(), closure_loss.clone(), model.layer.weight.detach().clone(),
                     model.layer.weight.grad.clone(), trainer.global_step))
    (keys_pl, loss_pl, closure_pl, w_pl, g_pl, step_pl), (keys_fl, loss_fl, closure_fl, w_fl, g_fl, step_fl) = seen
    assert keys_pl == keys_fl == ["loss"]
    assert torch.equal(loss_pl, loss_fl) and torch.equal(closure_pl, closure_fl)
    assert torch.equal(w_pl, w_fl) and torch.equal(g_pl, g_fl)
    assert step_pl == step_fl
