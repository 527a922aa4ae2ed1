"""The checkpoint dict: a Lightning-written checkpoint restores into a trainer and dumps back to the same keys and
values; a fastlight-dumped checkpoint resumes in Lightning exactly like Lightning's own."""
import os

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

from fastlight.callbacks import EarlyStopping, ModelCheckpoint
from fastlight.core.saving import load_model_state_dict
from fastlight.trainer.checkpoint_layout import (
    LIGHTNING_FORMAT_VERSION,
    SCALER_KEY,
    FitProgress,
    LoopProgress,
    dump_checkpoint,
    restore_checkpoint,
    resume_point,
)
from fastlight.utilities.checkpoint_io import atomic_save, load_checkpoint

from .fake_trainer import FakeTrainer

pl = pytest.importorskip("pytorch_lightning")


class Net(pl.LightningModule):
    def __init__(self, lr=0.1, width=4):
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 2)

    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.layer(batch[0]).pow(2).mean())

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=self.hparams.lr, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), "interval": "epoch"}}


def _loaders():
    g = torch.Generator().manual_seed(0)
    data = TensorDataset(torch.randn(16, 4, generator=g))
    return DataLoader(data, batch_size=4), DataLoader(data, batch_size=8)


def _pl_trainer(root, max_epochs, callbacks=()):
    return pl.Trainer(
        max_epochs=max_epochs, callbacks=list(callbacks), logger=False, enable_progress_bar=False,
        enable_model_summary=False, default_root_dir=str(root), num_sanity_val_steps=0,
    )


@pytest.fixture(scope="module")
def lightning_ckpts(tmp_path_factory):
    root = tmp_path_factory.mktemp("plrun")
    pl.seed_everything(1, verbose=False)
    callbacks = [
        pl.callbacks.ModelCheckpoint(dirpath=root / "ck", monitor="val_loss", save_top_k=2, save_last=True),
        pl.callbacks.ModelCheckpoint(dirpath=root / "steps", every_n_train_steps=3, save_top_k=-1),
        pl.callbacks.EarlyStopping("val_loss", patience=5),
    ]
    _pl_trainer(root, 2, callbacks).fit(Net(), *_loaders())
    return root


class RestoringTrainer(FakeTrainer):
    """A fake trainer whose epoch/step come from its LoopProgress, as fastlight's Trainer will."""

    @property
    def current_epoch(self):
        return self.loop_progress.fit.current_epoch

    @current_epoch.setter
    def current_epoch(self, value):
        pass

    @property
    def global_step(self):
        return self.loop_progress.fit.global_step

    @global_step.setter
    def global_step(self, value):
        pass


def _trainer_for(root, ckpt_dir, module=None):
    module = module or Net()
    conf = module.configure_optimizers()
    from types import SimpleNamespace

    sched = SimpleNamespace(scheduler=conf["lr_scheduler"]["scheduler"], interval="epoch", name=None)
    # Lightning's Trainer moves checkpoint callbacks to the end of trainer.callbacks; fastlight's must too
    callbacks = [
        EarlyStopping("val_loss", patience=5),
        ModelCheckpoint(dirpath=ckpt_dir, monitor="val_loss", save_top_k=2, save_last=True),
        ModelCheckpoint(dirpath=root / "steps", every_n_train_steps=3, save_top_k=-1),
    ]
    return RestoringTrainer(
        root, callbacks=callbacks, lightning_module=module, optimizers=[conf["optimizer"]],
        lr_scheduler_configs=[sched], loop_progress=LoopProgress(), max_epochs=5,
    )


def _same(a, b, path="ckpt"):
    assert type(a) is type(b) or (isinstance(a, dict) and isinstance(b, dict)), f"{path}: {type(a)} vs {type(b)}"
    if isinstance(a, dict):
        assert list(a.keys()) == list(b.keys()), f"{path}: keys {list(a)} vs {list(b)}"
        for k in a:
            _same(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            _same(x, y, f"{path}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert torch.equal(a, b), path
    else:
        assert a == b, f"{path}: {a!r} vs {b!r}"


def test_lightning_checkpoint_round_trips_through_restore_and_dump(lightning_ckpts):
    original = load_checkpoint(lightning_ckpts / "ck" / "last.ckpt")
    trainer = _trainer_for(lightning_ckpts, lightning_ckpts / "ck")
    restore_checkpoint(trainer, original)
    assert (trainer.current_epoch, trainer.global_step) == (original["epoch"], original["global_step"])
    dumped = dump_checkpoint(trainer)
    assert dumped.pop("fastlight_version")
    assert dumped.pop("pytorch-lightning_version") == LIGHTNING_FORMAT_VERSION
    original = dict(original)
    original.pop("pytorch-lightning_version")
    for key, state in original["callbacks"].items():
        if key.startswith("ModelCheckpoint"):
            state["current_score"] = None  # ModelCheckpoint.load_state_dict does not restore it, in Lightning either
    # same keys in the same order, same values (loops counters, callback states, optimizer/scheduler states, hparams)
    _same(dumped, original)


def test_fastlight_dump_resumes_in_lightning_like_lightnings_own(lightning_ckpts, tmp_path):
    original_path = lightning_ckpts / "ck" / "last.ckpt"
    trainer = _trainer_for(lightning_ckpts, lightning_ckpts / "ck")
    restore_checkpoint(trainer, load_checkpoint(original_path))
    ours_path = tmp_path / "fastlight.ckpt"
    atomic_save(dump_checkpoint(trainer), ours_path)
    # Lightning loads it with its default (safe) torch.load and resumes
    finals = []
    for path in (original_path, ours_path):
        pl.seed_everything(2, verbose=False)
        model = Net()
        t = _pl_trainer(tmp_path / ("root_" + os.path.basename(path)), 4)
        t.fit(model, *_loaders(), ckpt_path=str(path))
        finals.append((t.current_epoch, t.global_step, model.layer.weight.detach().clone()))
    assert finals[0][:2] == finals[1][:2] == (4, 16)
    assert torch.equal(finals[0][2], finals[1][2])
    loaded = Net.load_from_checkpoint(ours_path)
    assert loaded.hparams.lr == 0.1 and torch.equal(loaded.layer.weight, trainer.lightning_module.layer.weight)


def test_weights_only_dump_and_scaler_key(tmp_path):
    module = Net()
    trainer = _trainer_for(tmp_path, tmp_path / "ck", module)
    trainer.loop_progress.fit = FitProgress.at_epoch_end(3, 12, 4)
    light = dump_checkpoint(trainer, weights_only=True)
    assert set(light) == {"epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops", "hparams_name",
                          "hyper_parameters", "fastlight_version"}
    assert light["epoch"] == 3 and light["global_step"] == 12
    trainer.scaler = torch.amp.GradScaler("cpu", init_scale=1024.0)
    full = dump_checkpoint(trainer)
    assert full[SCALER_KEY]["scale"] == 1024.0 and list(full)[:5] == ["epoch", "global_step", "pytorch-lightning_version", "state_dict", "loops"]
    other = _trainer_for(tmp_path, tmp_path / "ck")
    other.scaler = torch.amp.GradScaler("cpu")
    restore_checkpoint(other, full)
    assert other.scaler.get_scale() == 1024.0
    # a weights-only checkpoint cannot resume fit, with Lightning's explanation
    with pytest.raises(KeyError, match="save_weights_only"):
        restore_checkpoint(_trainer_for(tmp_path, tmp_path / "ck"), light)
    restore_checkpoint(_trainer_for(tmp_path, tmp_path / "ck"), light, stage="validate")  # fine outside fit


def test_at_epoch_end_counters_resume_in_lightning(tmp_path):
    """A trainer without live counters still writes loops that Lightning resumes from at the right epoch."""
    module = Net()
    source = _trainer_for(tmp_path, tmp_path / "ck", module)
    plain = FakeTrainer(tmp_path, lightning_module=module, optimizers=source.optimizers,
                        lr_scheduler_configs=source.lr_scheduler_configs, current_epoch=2, global_step=8)
    assert not hasattr(plain, "loop_progress")
    atomic_save(dump_checkpoint(plain), tmp_path / "a.ckpt")
    t = _pl_trainer(tmp_path, 3)
    t.fit(Net(), *_loaders(), ckpt_path=str(tmp_path / "a.ckpt"))
    assert (t.current_epoch, t.global_step) == (3, 12)


def test_resume_point_matches_lightnings_restart_rules(lightning_ckpts):
    steps = sorted(os.listdir(lightning_ckpts / "steps"))
    assert steps == ["epoch=0-step=3.ckpt", "epoch=1-step=6.ckpt"]
    p = FitProgress()
    p.load_state_dict(load_checkpoint(lightning_ckpts / "steps" / "epoch=0-step=3.ckpt")["loops"]["fit_loop"])
    r = resume_point(p, num_training_batches=4)
    # Lightning continues epoch 0 at batch_idx 3 with global_step 3 and no new on_train_epoch_start
    assert (r.epoch, r.batch_idx, r.global_step, r.batches_that_stepped, r.run_epoch_start_hooks, r.mid_epoch) == (0, 3, 3, 3, False, True)
    p = FitProgress()
    p.load_state_dict(load_checkpoint(lightning_ckpts / "ck" / "last.ckpt")["loops"]["fit_loop"])
    r = resume_point(p, num_training_batches=4)
    assert (r.epoch, r.batch_idx, r.global_step, r.run_epoch_start_hooks) == (2, 0, 8, True)
    assert p.current_epoch == 2


def test_resume_point_after_last_batch_moves_to_next_epoch():
    p = FitProgress()
    for _ in range(1):
        p.epoch.increment_ready()
        p.epoch.increment_started()
    for i in range(4):
        p.batch.is_last_batch = i == 3
        p.batch.increment_ready()
        p.batch.increment_started()
        p.optim.optimizer.step.increment_ready()
        p.optim.optimizer.step.increment_completed()
        p.batch.increment_processed()
        if i < 3:
            p.batch.increment_completed()
            p.batches_that_stepped += 1
    # saved in on_train_batch_end of the last batch (every_n_train_steps == batches per epoch)
    r = resume_point(p, num_training_batches=4)
    assert (r.epoch, r.batch_idx, r.global_step, r.batches_that_stepped) == (1, 0, 4, 4)


def test_load_model_state_dict_errors_name_the_problem():
    model = Net()
    good = model.state_dict()
    with pytest.raises(RuntimeError, match=r"missing keys \['layer.bias'\].*strict=False"):
        load_model_state_dict(model, {"layer.weight": good["layer.weight"]})
    load_model_state_dict(model, {"layer.weight": good["layer.weight"]}, strict=False)
    with pytest.raises(RuntimeError, match=r"unexpected keys \['extra'\]"):
        load_model_state_dict(model, {**good, "extra": torch.zeros(1)})
    with pytest.raises(RuntimeError, match=r"shape mismatch for layer.weight: checkpoint \(2, 8\) vs model \(2, 4\)"):
        load_model_state_dict(model, Net(width=8).state_dict(), strict=False)


def test_loops_state_dict_layout_is_lightnings(lightning_ckpts):
    loops = load_checkpoint(lightning_ckpts / "ck" / "last.ckpt")["loops"]
    progress = LoopProgress()
    for stage in ("fit", "validate", "test", "predict"):
        progress.load_state_dict(loops, stage)
    _same(progress.state_dict(), loops)
    with pytest.raises(KeyError, match="fit_loop"):
        LoopProgress().load_state_dict({}, "fit")


def test_save_checkpoint_writes_atomically_and_loads_in_lightning(tmp_path):
    from fastlight.trainer.checkpoint_layout import save_checkpoint

    trainer = _trainer_for(tmp_path, tmp_path / "ck")
    save_checkpoint(trainer, tmp_path / "out" / "model.ckpt")
    assert os.listdir(tmp_path / "out") == ["model.ckpt"]
    loaded = Net.load_from_checkpoint(tmp_path / "out" / "model.ckpt")  # Lightning's own loader
    assert torch.equal(loaded.layer.weight, trainer.lightning_module.layer.weight)
    save_checkpoint(trainer, tmp_path / "out" / "w.ckpt", weights_only=True)
    assert "optimizer_states" not in torch.load(tmp_path / "out" / "w.ckpt", weights_only=True)
    trainer.lightning_module = None
    with pytest.raises(AttributeError, match="model is attached"):
        save_checkpoint(trainer, tmp_path / "x.ckpt")


def test_load_from_checkpoint_like_lightning(lightning_ckpts, tmp_path):
    from fastlight.core.saving import _load_from_checkpoint, save_hparams_to_yaml

    path = lightning_ckpts / "ck" / "last.ckpt"
    ours = _load_from_checkpoint(Net, path)
    theirs = Net.load_from_checkpoint(path)
    assert dict(ours.hparams) == dict(theirs.hparams) == {"lr": 0.1, "width": 4}
    assert torch.equal(ours.layer.weight, theirs.layer.weight)
    assert _load_from_checkpoint(Net, path, lr=0.5).hparams.lr == 0.5  # overrides
    save_hparams_to_yaml(tmp_path / "hp.yaml", {"lr": 0.25, "width": 4})
    assert _load_from_checkpoint(Net, path, hparams_file=tmp_path / "hp.yaml").hparams.lr == 0.25
    with pytest.raises(ValueError, match="hparams_file"):
        _load_from_checkpoint(Net, path, hparams_file=tmp_path / "hp.json")
    # another model's checkpoint: the error names the file and the problem
    with pytest.raises(RuntimeError, match=r"last.ckpt.*shape mismatch for layer.weight"):
        _load_from_checkpoint(Net, path, width=8)
    with pytest.warns(UserWarning, match="not in the model state dict but in the checkpoint"):
        class Smaller(Net):
            def __init__(self, lr=0.1, width=4):
                super().__init__(lr, width)
                del self.layer
                self.other = torch.nn.Linear(4, 2)

        _load_from_checkpoint(Smaller, path, strict=False)
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        _load_from_checkpoint(Net, tmp_path / "missing.ckpt")


@pytest.mark.parametrize("override", [True, False])
def test_load_from_checkpoint_calls_configure_model_before_on_load_checkpoint_like_lightning(override, tmp_path):
    """A module that builds layers in configure_model gets them before on_load_checkpoint and the weights (only when
    the hook is overridden); a `strict` that contradicts `strict_loading` is refused. Both frameworks alike."""
    import fastlight

    def build(framework, calls):
        class Lazy(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = None

            def on_load_checkpoint(self, checkpoint):
                calls.append("on_load_checkpoint")

        if override:
            def configure_model(self):
                calls.append("configure_model")
                if self.layer is None:
                    self.layer = torch.nn.Linear(4, 2)

            Lazy.configure_model = configure_model
        return Lazy

    path = tmp_path / "lazy.ckpt"
    weights = {"layer.weight": torch.ones(2, 4), "layer.bias": torch.zeros(2)} if override else {}
    torch.save({"state_dict": weights, "pytorch-lightning_version": LIGHTNING_FORMAT_VERSION}, path)
    for framework in (pl, fastlight):
        calls = []
        cls = build(framework, calls)
        model = cls.load_from_checkpoint(path, weights_only=False)
        expected = ["configure_model", "on_load_checkpoint"] if override else ["on_load_checkpoint"]
        assert calls == expected, framework.__name__
        if override:
            assert torch.equal(model.layer.weight, torch.ones(2, 4))

        class Loose(cls):
            def __init__(self):
                super().__init__()
                self.strict_loading = False

        with pytest.raises(ValueError, match="in conflict with"):
            Loose.load_from_checkpoint(path, strict=True, weights_only=False)


def test_on_load_checkpoint_runs_before_the_weights_and_a_missing_state_dict_is_named(tmp_path):
    from fastlight.core.saving import _load_from_checkpoint

    weights = Net().state_dict()

    class Filling(Net):
        def on_load_checkpoint(self, checkpoint):
            checkpoint["state_dict"] = weights  # Lightning's order: the hook may edit the dict before the weights load

    torch.save({"hyper_parameters": {"lr": 0.1, "width": 4}}, tmp_path / "no_weights.ckpt")
    assert torch.equal(_load_from_checkpoint(Filling, tmp_path / "no_weights.ckpt").layer.weight, weights["layer.weight"])
    with pytest.raises(KeyError, match=r"No 'state_dict' in .*no_weights\.ckpt"):
        _load_from_checkpoint(Net, tmp_path / "no_weights.ckpt")
    trainer = _trainer_for(tmp_path, tmp_path / "ck", module=Filling())
    restore_checkpoint(trainer, {"loops": None, "optimizer_states": [], "lr_schedulers": []}, stage="validate")
    assert torch.equal(trainer.lightning_module.layer.weight, weights["layer.weight"])
    with pytest.raises(KeyError, match="No 'state_dict' in the checkpoint"):
        restore_checkpoint(_trainer_for(tmp_path, tmp_path / "ck"), {"epoch": 0}, stage="validate")


def test_datamodule_load_from_checkpoint(tmp_path):
    from fastlight.core.saving import _load_from_checkpoint

    class DM(pl.LightningDataModule):
        def __init__(self, batch_size=4):
            super().__init__()
            self.save_hyperparameters()
            self.seen = 0

        def state_dict(self):
            return {"seen": self.seen}

        def load_state_dict(self, state):
            self.seen = state["seen"]

    torch.save({"datamodule_hyper_parameters": {"batch_size": 16}, "datamodule_hparams_name": "kwargs",
                DM.__qualname__: {"seen": 5}, "state_dict": {}}, tmp_path / "dm.ckpt")
    dm = _load_from_checkpoint(DM, tmp_path / "dm.ckpt")
    assert dm.hparams.batch_size == 16 and dm.seen == 5
