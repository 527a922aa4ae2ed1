"""Resuming a fit from a checkpoint: exact at an epoch boundary and mid-epoch, the loop counters Lightning writes,
and checkpoints crossing between fastlight and Lightning in both directions.

Every test runs the same user code (`make_module(framework)`) under fastlight and, where compared, pytorch_lightning.
The data order is RNG-independent (a sampler seeded by its epoch), so an uninterrupted run and a resumed one see the
same batches.
"""
import os

import pytest
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

import fastlight
from fastlight.utilities.checkpoint_io import load_checkpoint

pl = pytest.importorskip("pytorch_lightning")

BATCHES = 4  # per epoch


class EpochSeededSampler(Sampler):
    """A shuffling sampler whose order depends only on the epoch (set_epoch), like DistributedSampler."""

    def __init__(self, n):
        self.n, self.epoch = n, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __iter__(self):
        return iter(torch.randperm(self.n, generator=torch.Generator().manual_seed(100 + self.epoch)).tolist())

    def __len__(self):
        return self.n


def loaders(with_val=False):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * 8, 4, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True), torch.arange(len(x)))
    train = DataLoader(data, batch_size=8, sampler=EpochSeededSampler(len(x)))
    return (train, DataLoader(data, batch_size=16)) if with_val else (train,)


def make_module(framework, scheduler="step_lr"):
    class Net(framework.LightningModule):
        def __init__(self, lr=0.05):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)
            self.seen = []  # (epoch, batch_idx, global_step, first sample index) at each on_train_batch_start
            self.saved_hook_calls = 0
            self.loaded_extra = None

        def on_train_batch_start(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch_idx, self.global_step, int(batch[2][0])))

        def training_step(self, batch, batch_idx):
            x, y, _ = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y, _ = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(x), y))

        def configure_optimizers(self):
            opt = torch.optim.Adam(self.parameters(), lr=self.hparams.lr)
            if scheduler == "plateau":  # patience 0: it halves the lr at most epoch ends
                sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, patience=0, factor=0.5, threshold=0.5)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "train_loss"}}
            sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)
            interval = "step" if scheduler == "step_lr_per_step" else "epoch"
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": interval}}

        def on_save_checkpoint(self, checkpoint):
            self.saved_hook_calls += 1
            checkpoint["extra"] = {"saved_at_step": self.global_step}

        def on_load_checkpoint(self, checkpoint):
            self.loaded_extra = checkpoint.get("extra")

    return Net


def fit(framework, root, max_epochs, callbacks=(), ckpt_path=None, with_val=False, net=None, **kwargs):
    (pl if framework is pl else fastlight).seed_everything(0, verbose=False)
    model = (net or make_module(framework))()
    extra = dict(fused=False) if framework is fastlight else {}
    trainer = framework.Trainer(
        max_epochs=max_epochs, callbacks=list(callbacks), logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(root), num_sanity_val_steps=0, **extra, **kwargs,
    )
    trainer.fit(model, *loaders(with_val), ckpt_path=ckpt_path)
    return trainer, model


def state_of(trainer, model):
    opt = trainer.optimizers[0].state_dict()
    return dict(
        epoch=trainer.current_epoch, step=trainer.global_step, weight=model.layer.weight.detach().clone(),
        exp_avg=opt["state"][0]["exp_avg"].clone(), lr=[g["lr"] for g in opt["param_groups"]],
    )


def assert_same_state(a, b):
    assert (a["epoch"], a["step"], a["lr"]) == (b["epoch"], b["step"], b["lr"])
    assert torch.equal(a["weight"], b["weight"]) and torch.equal(a["exp_avg"], b["exp_avg"])


@pytest.mark.parametrize("scheduler", ["step_lr", "step_lr_per_step"])
def test_resume_at_an_epoch_boundary_is_bit_identical_to_the_uninterrupted_run(tmp_path, scheduler):
    Net = make_module(fastlight, scheduler)
    full_trainer, full = fit(fastlight, tmp_path / "full", 4, net=Net)
    ck = fastlight.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    fit(fastlight, tmp_path / "a", 2, [ck], net=Net)
    resumed_trainer, resumed = fit(fastlight, tmp_path / "b", 4, ckpt_path=ck.last_model_path, net=Net)
    assert len(set(map(tuple, (state_of(full_trainer, full)["lr"], [0.05])))) == 2  # the scheduler did change it
    assert_same_state(state_of(resumed_trainer, resumed), state_of(full_trainer, full))
    # the same batches in the same order, at the same epoch/batch_idx/global_step
    assert resumed.seen == full.seen[2 * BATCHES:]
    # module hooks saw the checkpoint both ways
    assert resumed.loaded_extra == {"saved_at_step": 2 * BATCHES}


@pytest.mark.parametrize("scheduler", ["step_lr", "plateau"])
def test_resume_from_lightning_written_checkpoint_matches_lightning_resuming_it(tmp_path, scheduler):
    """Also for ReduceLROnPlateau, which no resume makes exact: the default checkpoint is written in
    on_train_epoch_end, before the epoch's plateau step, and Lightning does not replay that step (nor does fastlight)."""
    ck = pl.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    fit(pl, tmp_path / "a", 2, [ck], net=make_module(pl, scheduler))
    t_fl, m_fl = fit(fastlight, tmp_path / "b", 4, ckpt_path=ck.last_model_path, net=make_module(fastlight, scheduler))
    t_pl, m_pl = fit(pl, tmp_path / "c", 4, ckpt_path=ck.last_model_path, net=make_module(pl, scheduler))
    assert_same_state(state_of(t_fl, m_fl), state_of(t_pl, m_pl))
    assert m_fl.seen == m_pl.seen


def _step_checkpoints(framework, root, every=3, epochs=3, with_val=False):
    ck = framework.callbacks.ModelCheckpoint(dirpath=root / "steps", every_n_train_steps=every, save_top_k=-1)
    fit(framework, root, epochs, [ck], with_val=with_val)
    return {name: load_checkpoint(root / "steps" / name) for name in sorted(os.listdir(root / "steps"))}


@pytest.mark.parametrize("with_val", [False, True])
def test_loop_counters_written_mid_epoch_match_lightnings(tmp_path, with_val):
    ours = _step_checkpoints(fastlight, tmp_path / "fl", with_val=with_val)
    theirs = _step_checkpoints(pl, tmp_path / "pl", with_val=with_val)
    assert list(ours) == list(theirs) == sorted(["epoch=0-step=3.ckpt", "epoch=1-step=6.ckpt", "epoch=2-step=9.ckpt",
                                                 "epoch=2-step=12.ckpt"])
    for name in ours:
        assert ours[name]["loops"] == theirs[name]["loops"], name
        assert (ours[name]["epoch"], ours[name]["global_step"]) == (theirs[name]["epoch"], theirs[name]["global_step"])


@pytest.mark.parametrize("name", ["epoch=1-step=6.ckpt", "epoch=2-step=12.ckpt"])
def test_mid_epoch_resume_continues_at_the_next_batch_bit_identical(tmp_path, name):
    """every_n_train_steps checkpoints: the resumed run goes on with the next batch of that epoch (Lightning's
    batch_idx, global_step and hooks; the batches already trained are skipped), ending where the uninterrupted run
    ends. step=12 was saved after the epoch's last batch: the run goes on with the next epoch."""
    _step_checkpoints(fastlight, tmp_path / "fl", epochs=3)
    full_trainer, full = fit(fastlight, tmp_path / "full", 4)
    path = tmp_path / "fl" / "steps" / name
    step = load_checkpoint(path)["global_step"]
    resumed_trainer, resumed = fit(fastlight, tmp_path / "b", 4, ckpt_path=str(path))
    assert resumed.seen == full.seen[step:]
    assert_same_state(state_of(resumed_trainer, resumed), state_of(full_trainer, full))
    assert resumed_trainer._batches_that_stepped == full_trainer._batches_that_stepped


@pytest.mark.parametrize("name", ["epoch=1-step=6.ckpt", "epoch=2-step=12.ckpt"])
def test_mid_epoch_resume_counts_like_lightning(tmp_path, name):
    """From the same mid-epoch checkpoint (written by Lightning) both frameworks run the same epochs, batch indices
    and global steps, and log at the same steps. (The data differs: Lightning restarts a plain dataloader from its
    first batch, fastlight skips the batches already trained.)"""
    _step_checkpoints(pl, tmp_path / "pl", epochs=3)
    path = str(tmp_path / "pl" / "steps" / name)
    t_fl, m_fl = fit(fastlight, tmp_path / "b", 4, ckpt_path=path)
    t_pl, m_pl = fit(pl, tmp_path / "c", 4, ckpt_path=path)
    assert [s[:3] for s in m_fl.seen] == [s[:3] for s in m_pl.seen]
    assert (t_fl.current_epoch, t_fl.global_step) == (t_pl.current_epoch, t_pl.global_step)
    assert t_fl._batches_that_stepped == t_pl.fit_loop.epoch_loop._batches_that_stepped


def test_max_steps_resume_from_an_epoch_end_save_goes_on_inside_that_epoch_like_lightning(tmp_path):
    """max_steps cut the first fit's epoch short and the default checkpoint was written in its on_train_epoch_end:
    resuming with a larger max_steps, Lightning goes on inside that epoch (no on_train_epoch_start, the next
    batch_idx, the epoch ends again), and so does fastlight."""

    def run(framework):
        root = tmp_path / framework.__name__
        ck = framework.callbacks.ModelCheckpoint(dirpath=root / "ck")
        fit(framework, root / "a", -1, [ck], max_steps=1)
        calls = []

        class Recorder(framework.Callback):
            def on_train_epoch_start(self, trainer, pl_module):
                calls.append(("epoch_start", trainer.current_epoch))

            def on_train_epoch_end(self, trainer, pl_module):
                calls.append(("epoch_end", trainer.current_epoch, trainer.global_step))

        trainer, model = fit(framework, root / "b", -1, [Recorder()], ckpt_path=ck.best_model_path, max_steps=6)
        return calls, [s[:3] for s in model.seen], (trainer.current_epoch, trainer.global_step)

    ours, theirs = run(fastlight), run(pl)
    assert ours == theirs
    assert theirs[0] == [("epoch_end", 0, 4), ("epoch_start", 1), ("epoch_end", 1, 6)]


def test_fastlight_mid_epoch_checkpoint_resumes_in_lightning(tmp_path):
    _step_checkpoints(fastlight, tmp_path / "fl", epochs=3)
    path = str(tmp_path / "fl" / "steps" / "epoch=1-step=6.ckpt")
    t_pl, m_pl = fit(pl, tmp_path / "c", 4, ckpt_path=path)
    assert (t_pl.current_epoch, t_pl.global_step) == (4, 16)
    assert [s[:3] for s in m_pl.seen][:3] == [(1, 2, 6), (1, 3, 7), (2, 0, 8)]


@pytest.mark.parametrize("source", ["mid_epoch", "epoch_end"])
def test_sanity_check_is_skipped_only_when_the_restored_epoch_is_unfinished_as_lightning(tmp_path, source):
    """Lightning 2.6 runs no sanity check when the fit continues an unfinished epoch (`fit_loop.restarting`); a
    checkpoint saved at an epoch's end (the epoch counted as processed) restarts nothing: the sanity check runs."""
    root = tmp_path / "ckpts"
    if source == "mid_epoch":
        _step_checkpoints(pl, root, epochs=2, with_val=True)
        path = root / "steps" / "epoch=1-step=6.ckpt"
    else:
        ck = pl.callbacks.ModelCheckpoint(dirpath=root / "epochs", save_top_k=-1, save_on_train_epoch_end=True)
        fit(pl, root, 1, [ck], with_val=True)
        path = root / "epochs" / "epoch=0-step=4.ckpt"
    seen = {}
    for framework in (pl, fastlight):
        calls = []

        class Watch(framework.Callback):
            def on_sanity_check_start(self, trainer, pl_module):
                calls.append("sanity_check")

            def on_train_start(self, trainer, pl_module):
                calls.append(("train_start", trainer.fit_loop.restarting, trainer.current_epoch,
                              trainer.global_step))

        (pl if framework is pl else fastlight).seed_everything(0, verbose=False)
        extra = dict(fused=False) if framework is fastlight else {}
        trainer = framework.Trainer(max_epochs=3, callbacks=[Watch()], logger=False, enable_progress_bar=False,
                                    enable_model_summary=False, default_root_dir=str(tmp_path / "run"),
                                    num_sanity_val_steps=2, **extra)
        trainer.fit(make_module(framework)(), *loaders(True), ckpt_path=str(path))
        seen[framework.__name__] = (calls, trainer.current_epoch, trainer.global_step)
    assert seen["fastlight"] == seen["pytorch_lightning"]
    assert ("sanity_check" in seen["fastlight"][0]) == (source == "epoch_end")


def test_save_checkpoint_hooks_and_weights_only(tmp_path):
    class Recorder(fastlight.Callback):
        def __init__(self):
            self.saved, self.loaded, self.count = 0, None, 0

        def on_train_batch_end(self, *args):
            self.count += 1

        def state_dict(self):
            return {"count": self.count}

        def load_state_dict(self, state):
            self.count = state["count"]

        def on_save_checkpoint(self, trainer, pl_module, checkpoint):
            self.saved += 1

        def on_load_checkpoint(self, trainer, pl_module, checkpoint):
            self.loaded = sorted(checkpoint["callbacks"])

    rec = Recorder()
    trainer, model = fit(fastlight, tmp_path / "a", 1, [rec], enable_checkpointing=False)
    trainer.save_checkpoint(tmp_path / "full.ckpt")
    trainer.save_checkpoint(tmp_path / "weights.ckpt", weights_only=True)
    full, light = load_checkpoint(tmp_path / "full.ckpt"), load_checkpoint(tmp_path / "weights.ckpt")
    assert full["callbacks"] == {rec.state_key: {"count": BATCHES}} and "optimizer_states" in full
    assert "callbacks" not in light and "optimizer_states" not in light and light["extra"] == {"saved_at_step": 4}
    assert rec.saved == 1 and model.saved_hook_calls == 2  # callbacks' hook only for full checkpoints
    rec2 = Recorder()
    fit(fastlight, tmp_path / "b", 2, [rec2], enable_checkpointing=False, ckpt_path=tmp_path / "full.ckpt")
    assert rec2.loaded == [rec.state_key] and rec2.count == 2 * BATCHES
    with pytest.raises(KeyError, match="save_weights_only"):
        fit(fastlight, tmp_path / "c", 2, enable_checkpointing=False, ckpt_path=tmp_path / "weights.ckpt")


def test_validate_and_test_with_best_and_last(tmp_path):
    ck = fastlight.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", monitor="val_loss", save_last=True)
    trainer, model = fit(fastlight, tmp_path / "a", 3, [ck], with_val=True)
    val = loaders(True)[1]
    best = fastlight.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                             callbacks=[ck], default_root_dir=str(tmp_path))
    with torch.no_grad():
        model.layer.weight.zero_()  # the checkpoint's weights must come back
    out_best = best.validate(model, val, ckpt_path="best", verbose=False)
    assert out_best[0]["val_loss"] == pytest.approx(float(ck.best_model_score))
    assert best.ckpt_path == ck.best_model_path
    out_last = trainer.validate(dataloaders=val, ckpt_path="last", verbose=False)
    assert trainer.ckpt_path == ck.last_model_path and out_last[0]["val_loss"] >= 0
    with pytest.warns(UserWarning, match="best model of the previous `fit`"):
        trainer.validate(dataloaders=val, verbose=False)
    assert trainer.ckpt_path == ck.best_model_path
    no_ck = fastlight.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(ValueError, match="`ModelCheckpoint` is not configured"):
        no_ck.validate(model, val, ckpt_path="best")
    with pytest.warns(UserWarning, match="no last checkpoint available"):
        no_ck.validate(model, val, ckpt_path="last", verbose=False)


def test_load_from_checkpoint_builds_module_and_datamodule(tmp_path):
    class DM(fastlight.LightningDataModule):
        def __init__(self, batch_size=8):
            super().__init__()
            self.save_hyperparameters()
            self.restored = None

        def train_dataloader(self):
            return loaders()[0]

        def state_dict(self):
            return {"cursor": 7}

        def load_state_dict(self, state):
            self.restored = state

    ck = fastlight.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    Net = make_module(fastlight)
    trainer = fastlight.Trainer(max_epochs=1, callbacks=[ck], logger=False, enable_progress_bar=False,
                                enable_model_summary=False, default_root_dir=str(tmp_path))
    model = Net(lr=0.01)
    trainer.fit(model, datamodule=DM(batch_size=4))
    ckpt = load_checkpoint(ck.last_model_path)
    assert ckpt["hparams_name"] == "kwargs" and ckpt["hyper_parameters"] == {"lr": 0.01}
    assert ckpt["datamodule_hyper_parameters"] == {"batch_size": 4} and ckpt[DM.__qualname__] == {"cursor": 7}
    loaded = Net.load_from_checkpoint(ck.last_model_path)
    assert loaded.hparams.lr == 0.01 and torch.equal(loaded.layer.weight, model.layer.weight)
    assert Net.load_from_checkpoint(ck.last_model_path, lr=0.5).hparams.lr == 0.5
    dm = DM.load_from_checkpoint(ck.last_model_path)
    assert dm.hparams.batch_size == 4 and dm.restored == {"cursor": 7}
    # Lightning loads fastlight's checkpoint with its own load_from_checkpoint
    theirs = make_module(pl).load_from_checkpoint(ck.last_model_path)
    assert torch.equal(theirs.layer.weight, model.layer.weight)


def test_amp_scaler_state_saved_under_lightnings_key_and_restored(tmp_path):
    from fastlight.trainer.precision import MixedPrecision

    ck = fastlight.callbacks.ModelCheckpoint(dirpath=tmp_path / "ck", save_last=True)
    trainer, _ = fit(fastlight, tmp_path / "a", 1, [ck], plugins=[MixedPrecision("16-mixed", "cpu")])
    ckpt = load_checkpoint(ck.last_model_path)
    assert ckpt["MixedPrecision"] == trainer.scaler.state_dict()
    ckpt["MixedPrecision"]["scale"] = 1024.0  # a value the fresh scaler does not have
    torch.save(ckpt, tmp_path / "edited.ckpt")
    seen = []
    probe = fastlight.callbacks.LambdaCallback(on_train_start=lambda t, m: seen.append(t.scaler.get_scale()))
    fit(fastlight, tmp_path / "b", 2, [probe], plugins=[MixedPrecision("16-mixed", "cpu")],
        enable_checkpointing=False, ckpt_path=tmp_path / "edited.ckpt")
    assert seen == [1024.0]


def test_default_callbacks_and_checkpoint_folder_like_lightning(tmp_path, capsys, caplog, monkeypatch):
    """Lightning 2.6 defaults to its rich bar and summary when rich is installed; fastlight keeps the TQDM bar (the
    cheap default): compared with Lightning's choice without rich."""
    import pytorch_lightning.trainer.connectors.callback_connector as connector

    monkeypatch.setattr(connector, "_RICH_AVAILABLE", False)
    names = []
    for framework in (fastlight, pl):
        trainer = framework.Trainer(max_epochs=1, default_root_dir=str(tmp_path / framework.__name__))
        names.append([type(c).__name__ for c in trainer.callbacks])
        model = make_module(framework)()
        trainer.fit(model, *loaders())
        folder = os.path.join(trainer.logger.log_dir, "checkpoints")
        names.append((os.path.relpath(folder, str(tmp_path / framework.__name__)), os.listdir(folder)))
    assert names[0] == names[2] == ["TQDMProgressBar", "ModelSummary", "ModelCheckpoint"]
    assert names[1] == names[3] == (os.path.join("lightning_logs", "version_0", "checkpoints"), ["epoch=0-step=4.ckpt"])
    out = capsys.readouterr()
    assert "Total params" in out.err + caplog.text and "Epoch 0: 100%" in out.out


class _ValFailing(fastlight.LightningModule):
    """Dropout in training (the RNG matters); two validation loaders; validation can fail at (loader 1, batch 1)."""

    def __init__(self, fail=False):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(2, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 1))
        self.fail = fail
        self.val_seen = []

    def training_step(self, batch, batch_idx):
        return self.net(batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        self.val_seen.append((self.global_step, dataloader_idx, batch_idx))
        if self.fail and dataloader_idx == 1 and batch_idx == 1:
            raise ValueError("validation failed on purpose")
        self.log("v", self.net(batch[0]).sum())

    def on_validation_epoch_end(self):
        self.val_metrics = getattr(self, "val_metrics", [])
        self.val_metrics.append((self.global_step, {k: v.item() for k, v in self.trainer.callback_metrics.items()}))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.arange(16.0).reshape(8, 2) / 16), batch_size=2)

    def val_dataloader(self):
        data = TensorDataset(torch.arange(8.0).reshape(4, 2) / 8)
        return [DataLoader(data, batch_size=1), DataLoader(data, batch_size=1)]


@pytest.mark.parametrize("val_check_interval", [0.5, 1.0])
def test_a_validation_interrupted_by_an_exception_runs_again_in_full_on_resume(tmp_path, val_check_interval):
    """OnExceptionCheckpoint saves inside the failing validation; the resumed fit redoes that validation over every
    batch of every loader (its metrics are the uninterrupted run's), then trains on bit-identically. Lightning
    resumes such a validation with a shortened count of the first loader's batches (its last batches and the
    other loaders are skipped), which fastlight does not copy."""
    kw = dict(max_epochs=2, val_check_interval=val_check_interval, num_sanity_val_steps=0, logger=False,
              enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    fastlight.seed_everything(0)
    reference = _ValFailing()
    fastlight.Trainer(default_root_dir=tmp_path / "ref", enable_checkpointing=False, **kw).fit(reference)

    fastlight.seed_everything(0)
    failing = _ValFailing(fail=True)
    trainer = fastlight.Trainer(default_root_dir=tmp_path / "run", callbacks=[
        fastlight.callbacks.OnExceptionCheckpoint(tmp_path / "run")], **kw)
    with pytest.raises(ValueError, match="on purpose"):
        trainer.fit(failing)
    failed_at = failing.val_seen[-1][0]

    resumed = _ValFailing()
    fastlight.Trainer(default_root_dir=tmp_path / "run", enable_checkpointing=False, **kw).fit(
        resumed, ckpt_path=tmp_path / "run" / "on_exception.ckpt")
    redone = [s for s in resumed.val_seen if s[0] == failed_at]
    assert redone == [(failed_at, dl, i) for dl in (0, 1) for i in range(4)]
    assert dict(reference.val_metrics)[failed_at] == resumed.val_metrics[0][1]
    assert resumed.val_metrics == [m for m in reference.val_metrics if m[0] >= failed_at]
    for (k, a), b in zip(reference.state_dict().items(), resumed.state_dict().values()):
        assert torch.equal(a, b), k
