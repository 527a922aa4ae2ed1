"""The fits the kill-and-resume and signal tests run in child processes (tests/test_exact_resume.py,
tests/test_signals.py): small models whose result depends on every random number generator a resume must restore
(dropout, a shuffled DataLoader, python's and numpy's `random` in training_step), in a few configurations.

Children are forked from a multiprocessing forkserver that imported torch and fastlight once, so each start costs
milliseconds, not an import of torch; the parent SIGKILLs them (or sends SIGTERM / SIGINT) at random moments.
"""
import json
import multiprocessing as mp
import os
import random
import sys
import time

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as pl

CONFIGS = {
    # dropout, shuffle, python/numpy random, Adam + a per-step scheduler, a checkpoint after every step
    "fused": dict(fused=True, accumulate=1, val=False, every=1, epochs=3, interval="step"),
    "unfused": dict(fused=False, accumulate=1, val=False, every=1, epochs=3, interval="step"),
    # gradient accumulation, validation inside the epoch on two loaders, a per-epoch scheduler, checkpoints every 3
    # steps and at every epoch end (two ModelCheckpoints)
    "accumulate_val": dict(fused=True, accumulate=2, val=True, every=3, epochs=4, interval="epoch"),
    # on a GPU: 16-mixed with the device-side loss scaler (its scale and growth tracker are in the checkpoint), the
    # CUDA generator's state for dropout
    "cuda_16mixed": dict(fused=True, accumulate=1, val=True, every=2, epochs=3, interval="step", accelerator="gpu",
                         precision="16-mixed"),
}
SAMPLES, BATCH = 48, 8  # 6 batches per epoch
TIMEOUT = 120


class Net(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.25),
                                       torch.nn.Linear(32, 1))

    def training_step(self, batch, batch_idx):
        x, y = batch
        # python's and numpy's generators feed the result too
        jitter = 1.0 + 0.01 * random.random() + 0.01 * float(np.random.rand())
        loss = torch.nn.functional.mse_loss(self.net(x * jitter), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx, dataloader_idx=0):
        x, y = batch
        self.log("val_loss", torch.nn.functional.mse_loss(self.net(x), y))

    def configure_optimizers(self):
        opt = torch.optim.Adam(self.parameters(), lr=0.01)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.97)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": self.interval}}


class Progress(pl.Callback):
    """Reports the global step to the parent after each batch (a shared integer), and slows the steps a little so
    that a kill can land anywhere: in a step, in a checkpoint write, between the two."""

    def __init__(self, counter, delay):
        self.counter, self.delay = counter, delay

    def on_train_batch_end(self, trainer, *args):
        if self.counter is not None and trainer.is_global_zero:
            self.counter.value = trainer.global_step
        time.sleep(self.delay)


def _status(trainer) -> str:
    """The status's value ("interrupted"): str() of Lightning's str-enum members is "TrainerStatus.INTERRUPTED"."""
    status = trainer.state.status
    return getattr(status, "value", status)


class Record(pl.Callback):
    """What the run saw at its end: written to <root>/record-<pid>.json by on_exception / teardown."""

    def __init__(self, root):
        self.root, self.seen = root, {}

    def on_exception(self, trainer, pl_module, exception):
        self.seen["on_exception"] = type(exception).__name__
        self.seen["status_at_exception"] = _status(trainer)
        self.seen["step_at_exception"] = trainer.global_step

    def teardown(self, trainer, pl_module, stage):
        self.seen["teardown"] = True

    def write(self, trainer):
        self.seen["status"] = _status(trainer)
        with open(os.path.join(self.root, f"record-{os.getpid()}.json"), "w") as f:
            json.dump(self.seen, f)


def data(seed=1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(SAMPLES, 6, generator=g)
    return TensorDataset(x, x.sum(1, keepdim=True).sin())


def build(name, root, counter=None, delay=0.0, extra_callbacks=(), max_steps=-1):
    cfg = CONFIGS[name]
    pl.seed_everything(0, verbose=False)
    model = Net()
    model.interval = cfg["interval"]
    callbacks = [pl.callbacks.ModelCheckpoint(dirpath=os.path.join(root, "steps"), every_n_train_steps=cfg["every"],
                                              save_top_k=1, save_last=True),
                 Progress(counter, delay), *extra_callbacks]
    if cfg["val"]:
        callbacks.append(pl.callbacks.ModelCheckpoint(dirpath=os.path.join(root, "epochs"), save_last=True))
    trainer = pl.Trainer(accelerator=cfg.get("accelerator", "cpu"), devices=1, precision=cfg.get("precision"),
                         max_epochs=cfg["epochs"], max_steps=max_steps, accumulate_grad_batches=cfg["accumulate"], fused=cfg["fused"],
                         val_check_interval=4 if cfg["val"] else None, num_sanity_val_steps=0, logger=False,
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=root,
                         callbacks=callbacks, limit_val_batches=2 if cfg["val"] else 0)
    train = DataLoader(data(), batch_size=BATCH, shuffle=True)
    val = [DataLoader(data(2), batch_size=16), DataLoader(data(3), batch_size=16, shuffle=True)] if cfg["val"] else None
    return trainer, model, train, val


def child(name, root, resume, counter=None, delay=0.0, ckpt_path=None, env=None, extra=None):
    """A fit in a child process: from scratch or from `last`; writes <root>/final.pt when it ends normally."""
    torch.set_num_threads(1)
    os.environ.update(env or {})
    log = open(os.path.join(root, f"stderr-{os.getpid()}.txt"), "w")
    os.dup2(log.fileno(), 2)
    sys.stderr = log
    extra_callbacks = []
    record = Record(root)
    extra_callbacks.append(record)
    if extra == "on_exception_checkpoint":
        extra_callbacks.append(pl.callbacks.OnExceptionCheckpoint(dirpath=os.path.join(root, "exc")))
    trainer, model, train, val = build(name, root, counter, delay, extra_callbacks)
    try:
        trainer.fit(model, train, val, ckpt_path=ckpt_path or ("last" if resume else None))
    finally:
        record.write(trainer)
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(root, "final.pt"))


def same_weights(a, b):
    return sorted(a) == sorted(b) and all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------------------ the parent's side
def forkserver():
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "torch._dynamo", "numpy", "fastlight", "_resume_helpers"])
    return ctx


def run_child(ctx, *args, counter=None, **kwargs):
    p = ctx.Process(target=child, args=args, kwargs=dict(counter=counter, **kwargs))
    p.start()
    return p


def wait_for_step(p, counter, step, deadline):
    while p.is_alive() and counter.value < step and time.monotonic() < deadline:
        time.sleep(0.001)


def reference(ctx, name, root):
    os.makedirs(root, exist_ok=True)
    p = run_child(ctx, name, str(root), False)
    p.join(TIMEOUT)
    assert p.exitcode == 0, os.listdir(root)
    return torch.load(os.path.join(root, "final.pt"))


