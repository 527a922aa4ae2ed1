"""Shared user code for the Lightning-parity tests: the same classes are built on top of
pytorch_lightning and fastlight (`build(pl)`), so both frameworks run identical user code."""
import os
import warnings

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

MODULE_HOOKS = [
    "prepare_data", "setup", "configure_callbacks", "configure_model", "configure_optimizers",
    "on_fit_start", "on_fit_end", "on_train_start", "on_train_end",
    "on_validation_start", "on_validation_end", "on_test_start", "on_test_end", "on_predict_start", "on_predict_end",
    "on_train_epoch_start", "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end",
    "on_test_epoch_start", "on_test_epoch_end", "on_predict_epoch_start", "on_predict_epoch_end",
    "on_train_batch_start", "on_train_batch_end", "on_validation_batch_start", "on_validation_batch_end",
    "on_test_batch_start", "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end",
    "on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer",
    "training_step", "validation_step", "test_step", "predict_step",
    "on_before_zero_grad", "optimizer_zero_grad", "on_before_backward", "backward", "on_after_backward",
    "on_before_optimizer_step", "configure_gradient_clipping", "optimizer_step", "lr_scheduler_step",
    "on_validation_model_zero_grad", "on_validation_model_eval", "on_validation_model_train",
    "on_test_model_eval", "on_test_model_train", "on_predict_model_eval",
    "train_dataloader", "val_dataloader", "test_dataloader", "predict_dataloader", "teardown",
]

CALLBACK_HOOKS = [
    "setup", "teardown", "on_fit_start", "on_fit_end", "on_sanity_check_start", "on_sanity_check_end",
    "on_train_start", "on_train_end", "on_train_epoch_start", "on_train_epoch_end",
    "on_train_batch_start", "on_train_batch_end",
    "on_validation_start", "on_validation_end", "on_validation_epoch_start", "on_validation_epoch_end",
    "on_validation_batch_start", "on_validation_batch_end",
    "on_test_start", "on_test_end", "on_test_epoch_start", "on_test_epoch_end",
    "on_test_batch_start", "on_test_batch_end",
    "on_predict_start", "on_predict_end", "on_predict_epoch_start", "on_predict_epoch_end",
    "on_predict_batch_start", "on_predict_batch_end",
    "on_before_backward", "on_after_backward", "on_before_optimizer_step", "on_before_zero_grad",
]


def _describe(name, args, kwargs):
    """A short, framework-independent description of a hook call: its name and its int/str arguments."""
    def plain(v):  # Lightning passes `stage` as a str Enum ("fit"); compare values
        return str(getattr(v, "value", v))

    simple = [plain(a) for a in args if isinstance(a, (int, str)) and not isinstance(a, bool)]
    simple += [f"{k}={plain(v)}" for k, v in sorted(kwargs.items())
               if isinstance(v, (int, str)) and not isinstance(v, bool)]
    return f"{name}({', '.join(map(str, simple))})" if simple else name


def recording_module(base_cls, calls, skip=()):
    """Subclass `base_cls`, overriding every module hook (but `skip`) to record its call, then call the original."""
    ns = {}
    for name in MODULE_HOOKS:
        if name in skip:
            continue
        orig = getattr(base_cls, name, None)
        if orig is None:
            continue
        if (name.endswith("_dataloader") or name.endswith("_step") and name != "optimizer_step") \
                and name not in vars(base_cls):
            continue  # wrapping would make the framework believe the user defined it

        def make(name, orig):
            def hook(self, *args, **kwargs):
                # the step index arguments are the interesting part: epoch/batch_idx of optimizer_step etc.
                calls.append(_describe(name, args, kwargs))
                return orig(self, *args, **kwargs)

            hook.__name__ = name
            return hook

        ns[name] = make(name, orig)
    return type("Recording" + base_cls.__name__, (base_cls,), ns)


def recording_callback(pl, calls):
    ns = {}
    for name in CALLBACK_HOOKS:
        def make(name):
            def hook(self, trainer, pl_module, *args, **kwargs):
                calls.append("Callback." + _describe(name, args, kwargs))

            hook.__name__ = name
            return hook

        ns[name] = make(name)
    return type("RecordingCallback", (pl.Callback,), ns)()


def make_data(n=40, d=8, classes=3, seed=123):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    return TensorDataset(x, y)


def build(pl):
    """Define the shared user module for framework `pl` (pytorch_lightning or fastlight)."""

    class TinyModel(pl.LightningModule):
        def __init__(self, optimizer="sgd", scheduler=None, lr=0.1, hidden=16, dropout=0.0, log_extra=False,
                     n_train=40, n_val=16, batch_size=8, shuffle=True, monitor="val_loss", n_val_loaders=1,
                     skip_batch=None, stop_batch=None, return_dict=False, log_hooks=False):
            super().__init__()
            self.save_hyperparameters()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(8, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, 3))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            if batch_idx == self.hparams.skip_batch:
                return None
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            if self.hparams.log_extra:
                self.log("train_acc", (self(x).argmax(-1) == y).float().mean(), on_step=True, on_epoch=True,
                         prog_bar=True)
                self.log("train_max", loss, on_step=False, on_epoch=True, reduce_fx="max")
                self.log("train_sum", 1.0, on_epoch=True, reduce_fx="sum")
            if self.hparams.return_dict:
                return {"loss": loss, "extra": loss.detach() * 2}
            return loss

        def on_train_batch_start(self, batch, batch_idx):
            if batch_idx == self.hparams.stop_batch:
                return -1

        def on_train_batch_end(self, outputs, batch, batch_idx):
            if self.hparams.log_hooks:
                self.log("out_loss", outputs["loss"], on_epoch=True, reduce_fx="min", prog_bar=True)

        def on_train_epoch_end(self):
            if self.hparams.log_hooks:
                self.log("epoch_w", self.net[0].weight.sum())
                self.log_dict({"a": 1.0, "b": torch.tensor(2.0)}, prog_bar=True)

        def on_validation_epoch_end(self):
            if self.hparams.log_hooks:
                self.log("val_epoch_hook", 3.0, add_dataloader_idx=False)

        def on_before_optimizer_step(self, optimizer):
            if self.hparams.log_hooks:
                self.log("lr", optimizer.param_groups[0]["lr"], on_step=True, on_epoch=True)

        def validation_step(self, batch, batch_idx, dataloader_idx=0):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("val_loss", loss)
            if self.hparams.log_extra:
                self.log("val_step_loss", loss, on_step=True, prog_bar=True)
                self.log("val_bs", loss, batch_size=3)
            return loss

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.log("test_loss", nn.functional.cross_entropy(self(x), y))

        def predict_step(self, batch, batch_idx):
            return self(batch[0])

        def configure_optimizers(self):
            hp = self.hparams
            if hp.optimizer == "sgd":
                opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=0.9, weight_decay=1e-4)
            elif hp.optimizer == "adam":
                opt = torch.optim.Adam(self.parameters(), lr=hp.lr)
            else:
                opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=0.05)
            if hp.scheduler is None:
                return opt
            if hp.scheduler == "step":
                return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)]
            if hp.scheduler == "onecycle":
                sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=hp.lr, total_steps=200)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
            if hp.scheduler == "plateau":
                sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=0)
                return {"optimizer": opt, "lr_scheduler": sched, "monitor": hp.monitor}
            raise ValueError(hp.scheduler)

        def train_dataloader(self):
            return DataLoader(make_data(self.hparams.n_train), batch_size=self.hparams.batch_size,
                              shuffle=self.hparams.shuffle)

        def val_dataloader(self):
            loaders = [DataLoader(make_data(self.hparams.n_val + 8 * i, seed=7 + i), batch_size=self.hparams.batch_size)
                       for i in range(self.hparams.n_val_loaders)]
            return loaders[0] if len(loaders) == 1 else loaders

        def test_dataloader(self):
            return DataLoader(make_data(12, seed=9), batch_size=5)

        def predict_dataloader(self):
            return DataLoader(make_data(12, seed=9), batch_size=5)

    return TinyModel


QUIET = dict(enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False, logger=False)


def trainer_kwargs(tmp_path, **kw):
    out = dict(QUIET, accelerator="cpu", devices=1, default_root_dir=str(tmp_path))
    out.update(kw)
    return out


def quiet_warnings():
    warnings.filterwarnings("ignore")
    os.environ.setdefault("PL_DISABLE_FORK", "1")


def build_manual(pl):
    """Manual optimization with two optimizers (GAN-style alternation), schedulers and clipping."""

    class ManualModel(pl.LightningModule):
        def __init__(self, clip=None):
            super().__init__()
            self.automatic_optimization = False
            self.clip = clip
            torch.manual_seed(0)
            self.gen = nn.Linear(8, 8)
            self.disc = nn.Sequential(nn.Linear(8, 8), nn.Dropout(0.2), nn.Linear(8, 1))

        def training_step(self, batch, batch_idx):
            x, _ = batch
            opt_g, opt_d = self.optimizers()
            sched_g, sched_d = self.lr_schedulers()
            # discriminator
            self.toggle_optimizer(opt_d)
            d_loss = (self.disc(x) - 1).pow(2).mean() + self.disc(self.gen(x).detach()).pow(2).mean()
            self.manual_backward(d_loss)
            if self.clip:
                self.clip_gradients(opt_d, gradient_clip_val=self.clip, gradient_clip_algorithm="norm")
            opt_d.step()
            opt_d.zero_grad()
            self.untoggle_optimizer(opt_d)
            # generator, every other batch
            if batch_idx % 2 == 0:
                self.toggle_optimizer(opt_g)
                g_loss = (self.disc(self.gen(x)) - 1).pow(2).mean()
                self.manual_backward(g_loss)
                opt_g.step()
                opt_g.zero_grad()
                self.untoggle_optimizer(opt_g)
                sched_g.step()
            self.log("d_loss", d_loss, prog_bar=True)
            if self.trainer.is_last_batch:
                sched_d.step()
            return d_loss

        def configure_optimizers(self):
            opt_g = torch.optim.Adam(self.gen.parameters(), lr=0.01)
            opt_d = torch.optim.SGD(self.disc.parameters(), lr=0.05, momentum=0.5)
            return [opt_g, opt_d], [torch.optim.lr_scheduler.StepLR(opt_g, 2, 0.5),
                                    torch.optim.lr_scheduler.ExponentialLR(opt_d, 0.9)]

        def train_dataloader(self):
            return DataLoader(make_data(40), batch_size=8, shuffle=True)

    return ManualModel


def build_datamodule(pl):
    class DataModule(pl.LightningDataModule):
        def __init__(self, batch_size=8):
            super().__init__()
            self.save_hyperparameters()
            self.calls = []

        def prepare_data(self):
            self.calls.append("prepare_data")

        def setup(self, stage):
            self.calls.append(f"setup({getattr(stage, 'value', stage)})")
            self.train = make_data(32)
            self.val = make_data(16, seed=7)

        def train_dataloader(self):
            self.calls.append("train_dataloader")
            return DataLoader(self.train, batch_size=self.hparams.batch_size, shuffle=True)

        def val_dataloader(self):
            self.calls.append("val_dataloader")
            return DataLoader(self.val, batch_size=self.hparams.batch_size)

        def test_dataloader(self):
            self.calls.append("test_dataloader")
            return DataLoader(self.val, batch_size=5)

        def teardown(self, stage):
            self.calls.append(f"teardown({getattr(stage, 'value', stage)})")

    return DataModule


def make_logger(pl):
    """A logger recording every call, with Lightning's Logger API (a Logger subclass under Lightning)."""
    base = pl.loggers.Logger if pl.__name__ == "pytorch_lightning" else object

    class RecordingLogger(base):
        def __init__(self):
            if base is not object:
                super().__init__()
            self.rows = []
            self.hparams = []
            self.events = []

        @property
        def name(self):
            return "rec"

        @property
        def version(self):
            return 0

        @property
        def save_dir(self):
            return None

        @property
        def experiment(self):
            return self

        def log_metrics(self, metrics, step=None):
            self.rows.append((step, dict(sorted(metrics.items()))))

        def log_hyperparams(self, params, *args, **kwargs):
            self.hparams.append(dict(params))

        def log_graph(self, model, input_array=None):
            self.events.append("log_graph")

        def save(self):
            self.events.append("save")

        def finalize(self, status):
            self.events.append(f"finalize({status})")

    return RecordingLogger()


def snapshot_callback(pl, snaps):
    """Reads the trainer's metric dicts from inside hooks (they must match Lightning's at every point)."""

    def grab(tag):
        def hook(self, trainer, pl_module, *args, **kwargs):
            snaps.append((tag, {k: float(v) for k, v in sorted(trainer.callback_metrics.items())},
                          {k: float(v) for k, v in sorted(trainer.progress_bar_metrics.items())}))
        return hook

    ns = {name: grab(name) for name in ("on_train_batch_end", "on_train_epoch_end", "on_validation_epoch_end",
                                        "on_validation_end", "on_train_batch_start")}
    return type("Snapshot", (pl.Callback,), ns)()
