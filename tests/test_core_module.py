"""LightningModule / DataModule / Trainer surface: hparams, properties, optimizers wrapper, predict/validate
returns, the lean-loop guarantees (no per-step host sync, hooks only for callbacks that override them),
and a light `import fastlight`."""
import subprocess
import sys

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight.core.optimizer import LightningOptimizer


def _data(n=32, bs=4):
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)), batch_size=bs)


class Reg(fl.LightningModule):
    def __init__(self, lr=0.1, hidden=8, *, name="reg", **extra):
        super().__init__()
        self.save_hyperparameters()
        self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("loss", loss, prog_bar=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_loss", nn.functional.mse_loss(self(x), y))

    def predict_step(self, batch, batch_idx):
        return self(batch[0])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    def train_dataloader(self):
        return _data()

    def val_dataloader(self):
        return _data(8)

    def predict_dataloader(self):
        return _data(12, bs=5)


def _trainer(**kw):
    base = dict(max_epochs=1, enable_progress_bar=False, enable_model_summary=False, logger=False,
                enable_checkpointing=False, accelerator="cpu")
    base.update(kw)
    return fl.Trainer(**base)


def test_save_hyperparameters_collects_init_args_and_kwargs():
    m = Reg(lr=0.5, extra_flag=3)
    assert m.hparams == {"lr": 0.5, "hidden": 8, "name": "reg", "extra_flag": 3}
    assert m.hparams.lr == 0.5
    m.hparams.lr = 1.0
    assert m.hparams_initial.lr == 0.5


def test_save_hyperparameters_subclass_ignore_and_explicit():
    class Child(Reg):
        def __init__(self, depth=2, lr=0.3):
            super().__init__(lr=lr)
            self.save_hyperparameters(ignore=["depth"])

    assert Child(depth=4).hparams == {"lr": 0.3, "hidden": 8, "name": "reg"}

    class Named(fl.LightningModule):
        def __init__(self, a=1, b=2):
            super().__init__()
            self.save_hyperparameters("a")

    assert Named(a=5).hparams == {"a": 5}

    class FromDict(fl.LightningModule):
        def __init__(self, cfg):
            super().__init__()
            self.save_hyperparameters(cfg)

    assert FromDict({"x": 1}).hparams.x == 1


def test_module_properties_during_fit():
    seen = {}

    class Probe(Reg):
        def on_train_batch_end(self, outputs, batch, batch_idx):
            seen.setdefault("first", (self.global_step, self.current_epoch, self.device.type, self.trainer.world_size,
                                      isinstance(self.optimizers(), torch.optim.SGD),
                                      isinstance(self.optimizers(), LightningOptimizer), outputs["loss"].ndim))

    m = Probe()
    trainer = _trainer(max_epochs=2)
    trainer.fit(m)
    assert seen["first"] == (1, 0, "cpu", 1, True, True, 0)
    assert m.global_step == trainer.global_step == 16
    assert trainer.current_epoch == 2
    assert trainer.num_training_batches == 8
    assert trainer.estimated_stepping_batches == 16
    assert trainer.lightning_module is m and trainer.is_global_zero
    assert set(trainer.callback_metrics) == {"loss", "val_loss"}
    assert isinstance(trainer.progress_bar_metrics["loss"], float)


def test_predict_returns_cpu_predictions_per_batch():
    preds = _trainer().predict(Reg())
    assert [p.shape[0] for p in preds] == [5, 5, 2]


def test_validate_returns_one_dict_per_dataloader_with_floats():
    out = _trainer().validate(Reg(), verbose=False)
    assert len(out) == 1 and isinstance(out[0]["val_loss"], float)


def test_fit_with_datamodule_and_state_dict():
    class DM(fl.LightningDataModule):
        def __init__(self):
            super().__init__()
            self.stages = []

        def setup(self, stage):
            self.stages.append(stage)

        def train_dataloader(self):
            return _data()

    dm = DM()
    trainer = _trainer()
    trainer.fit(Reg(), datamodule=dm)
    assert dm.stages == ["fit"] and dm.trainer is trainer
    assert dm.state_dict() == {}


def test_training_step_returning_none_skips_the_optimizer_update():
    class Skip(Reg):
        def training_step(self, batch, batch_idx):
            return None

    m = Skip()
    before = [p.detach().clone() for p in m.parameters()]
    with pytest.warns(UserWarning, match="returned `None`"):
        _trainer(limit_train_batches=3).fit(m)
    assert all(torch.equal(a, b) for a, b in zip(before, m.parameters()))


def test_no_host_sync_per_step_without_logger_or_bar(monkeypatch):
    """Logged values stay tensors: nothing calls .item()/float() on them while training."""
    m = Reg()
    trainer = _trainer(limit_val_batches=0)
    calls = []
    orig_item, orig_float = torch.Tensor.item, torch.Tensor.__float__

    def caller():
        # torch's DataLoader draws its base seed with .item() on a CPU tensor once per epoch: not ours
        f = sys._getframe(2)
        return None if "torch/utils/data" in f.f_code.co_filename else f"{f.f_code.co_filename}:{f.f_lineno}"

    def item(self):
        if caller():
            calls.append(caller())
        return orig_item(self)

    def as_float(self):
        if caller():
            calls.append(caller())
        return orig_float(self)

    monkeypatch.setattr(torch.Tensor, "item", item)
    monkeypatch.setattr(torch.Tensor, "__float__", as_float)
    trainer.fit(m)
    monkeypatch.undo()
    assert calls == []


def test_logger_gets_numbers_only_every_log_every_n_steps():
    class Rec:
        name, version, save_dir, log_dir = "rec", 0, None, None

        def __init__(self):
            self.rows = []

        def log_metrics(self, metrics, step):
            self.rows.append((step, metrics))

        def log_hyperparams(self, params):
            self.hp = dict(params)

        def save(self):
            pass

        def finalize(self, status):
            self.status = status

    rec = Rec()
    _trainer(logger=rec, log_every_n_steps=3, limit_val_batches=0).fit(Reg())
    assert [s for s, _ in rec.rows] == [2, 5]
    assert all(isinstance(v, float) for _, row in rec.rows for k, v in row.items() if k != "epoch")
    assert rec.hp["lr"] == 0.1 and rec.status == "success"


def test_callbacks_only_called_for_overridden_hooks():
    class OnlyEpochEnd(fl.Callback):
        def __init__(self):
            self.n = 0

        def on_train_epoch_end(self, trainer, pl_module):
            self.n += 1

    cb = OnlyEpochEnd()
    trainer = _trainer(max_epochs=2, callbacks=[cb])
    trainer.fit(Reg())
    assert cb.n == 2
    assert "on_train_batch_end" not in trainer._cb_hooks
    assert trainer._cb_hooks["on_train_epoch_end"] == (cb.on_train_epoch_end,)


def test_default_bar_and_summary_print_and_fit_completes(capsys, caplog, tmp_path):
    trainer = fl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    trainer.fit(Reg())
    out = capsys.readouterr()
    # the summary is logged, as in Lightning: to stderr, or to the application's (here pytest's) logging handlers
    assert "Total params" in out.err + caplog.text and "Epoch 0" in out.out


def test_bf16_mixed_autocasts_the_step():
    dtypes = []

    class Probe(Reg):
        def training_step(self, batch, batch_idx):
            out = self(batch[0])
            dtypes.append(out.dtype)
            return out.float().pow(2).mean()

    _trainer(precision="bf16-mixed", limit_train_batches=1, limit_val_batches=0).fit(Probe())
    assert dtypes == [torch.bfloat16]


def test_64_true_converts_module_and_inputs():
    m = Reg()
    _trainer(precision="64-true", limit_train_batches=2, limit_val_batches=0).fit(m)
    assert all(p.dtype == torch.float64 for p in m.parameters())


def test_max_time_stops_training():
    trainer = _trainer(max_epochs=1000, max_time={"seconds": 0}, limit_val_batches=0)
    trainer.fit(Reg())
    assert trainer.global_step == 1


def test_import_fastlight_stays_light():
    code = ("import sys, torch; before = set(sys.modules); import fastlight; heavy = [m for m in ('tensorboard',"
            " 'rich', 'torchvision', 'pytorch_lightning', 'lightning_fabric', 'torchmetrics', 'tqdm', 'yaml',"
            " 'pandas', 'matplotlib') if m in sys.modules and m not in before]; print(heavy)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


def test_hooks_receive_the_same_optimizer_objects_as_in_lightning():
    """zero_grad/backward/pre-step hooks get the torch optimizer; optimizer_step gets the LightningOptimizer."""
    seen = {}

    class Probe(Reg):
        def on_before_zero_grad(self, optimizer):
            seen["zero_grad"] = type(optimizer)

        def on_before_optimizer_step(self, optimizer):
            seen["pre_step"] = type(optimizer)

        def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
            seen["step"] = isinstance(optimizer, LightningOptimizer)
            optimizer.step(closure=optimizer_closure)

    trainer = _trainer(limit_train_batches=1, limit_val_batches=0)
    trainer.fit(Probe())
    inner = type(trainer.optimizers[0])  # fused=True (the default): fastlight's FusedSGD, a torch.optim.SGD
    assert issubclass(inner, torch.optim.SGD)
    assert seen == {"zero_grad": inner, "pre_step": inner, "step": True}


def test_nested_lightning_modules_share_the_trainer_like_lightning():
    import pytorch_lightning as pl_ref
    from unittest.mock import Mock

    import fastlight

    for lib in (pl_ref, fastlight):
        ensemble, inner = lib.LightningModule(), lib.LightningModule()
        ensemble.inner = inner
        with pytest.raises(RuntimeError, match="attached to a `Trainer"):
            _ = ensemble.trainer
        trainer = Mock()
        ensemble.trainer = trainer
        assert inner.trainer is trainer, lib.__name__


def test_toggle_untoggle_optimizer_are_compiler_disabled_without_importing_dynamo():
    """Marked for Dynamo as torch.compiler.disable marks them, without importing torch._dynamo with fastlight; in a
    compiled function they run eagerly and still flip requires_grad."""
    code = "import sys, torch, fastlight; print('torch._dynamo' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout.strip() == "False"
    for name in ("toggle_optimizer", "untoggle_optimizer"):
        assert getattr(getattr(fl.LightningModule, name), "_torchdynamo_disable", False)

    class Two(fl.LightningModule):
        def __init__(self):
            super().__init__()
            self.a, self.b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)

    model = Two()
    opt_a = torch.optim.SGD(model.a.parameters(), lr=0.1)
    opt_b = torch.optim.SGD(model.b.parameters(), lr=0.1)
    trainer = type("T", (), {"optimizers": [opt_a, opt_b]})()
    model._trainer = trainer

    @torch.compile(backend="eager")
    def step(x):
        model.toggle_optimizer(opt_a)
        frozen = [p.requires_grad for p in model.b.parameters()]
        y = model.a(x).sum()
        model.untoggle_optimizer(opt_a)
        return y, frozen

    _, frozen = step(torch.ones(1, 2))
    assert frozen == [False, False]
    assert all(p.requires_grad for p in model.parameters())
