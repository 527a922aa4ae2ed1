"""fastlight's callbacks and loggers inside Lightning's own Trainer, against Lightning's callbacks and loggers.

Until fastlight.Trainer lands this is the real-loop check of their semantics: the same fit is run twice under
pytorch_lightning.Trainer, once with Lightning's objects and once with fastlight's, and the results must agree
(files written, metrics.csv content, stopping epoch, progress bars surviving fit/validate/test/predict).
Lightning does not recognise fastlight's ModelCheckpoint/progress bar as its own, so its defaults are switched off.
"""
import io
import os

import pytest
import torch
import torch.nn.functional as F

import fastlight.callbacks as flc
import fastlight.loggers as fll

from .scripted_fit import SCORES, checkpoint_outcome, loaders, make_module

pl = pytest.importorskip("pytorch_lightning")


class Net(make_module(pl, prog_bar=True)):
    def test_step(self, batch, batch_idx):
        self.log("test_loss", F.mse_loss(self.layer(batch[0]), batch[1]))

    def predict_step(self, batch, batch_idx):
        return self.layer(batch[0])

    def configure_optimizers(self):
        opt = torch.optim.SGD([{"params": self.layer.weight}, {"params": self.layer.bias, "lr": 0.01}], lr=self.hparams.lr, momentum=0.9)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5), "interval": "step"}}


def run(root, callbacks, logger=False, max_epochs=len(SCORES), **kwargs):
    pl.seed_everything(0, verbose=False)
    kwargs.setdefault("enable_progress_bar", False)
    trainer = pl.Trainer(
        max_epochs=max_epochs, callbacks=callbacks, logger=logger, enable_model_summary=False,
        default_root_dir=str(root), log_every_n_steps=1, **kwargs,
    )
    model = Net()
    trainer.fit(model, *loaders())
    return trainer, model


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(monitor="score", save_top_k=3, save_last=True),
        dict(monitor="score", save_top_k=2, mode="max", filename="{epoch}-{score:.2f}"),
        dict(every_n_train_steps=3, save_top_k=-1),
        dict(monitor="score", save_top_k=2, save_last="link"),
        dict(monitor="val_loss", every_n_train_steps=5, save_top_k=2),
    ],
)
def test_model_checkpoint_in_a_real_fit(tmp_path, kwargs):
    snaps = []
    for name, cls, extra in (("fl", flc.ModelCheckpoint, dict(enable_checkpointing=False)), ("pl", pl.callbacks.ModelCheckpoint, {})):
        cb = cls(dirpath=tmp_path / name, **kwargs)
        run(tmp_path / f"root_{name}", [cb], **extra)
        snaps.append(checkpoint_outcome(cb, tmp_path / name))
    assert snaps[0] == snaps[1]


@pytest.mark.parametrize(
    "kwargs",
    [dict(monitor="score", patience=2), dict(monitor="score", patience=1, min_delta=0.05), dict(monitor="score", stopping_threshold=0.45)],
)
def test_early_stopping_in_a_real_fit(tmp_path, kwargs):
    results = []
    for cls in (flc.EarlyStopping, pl.callbacks.EarlyStopping):
        cb = cls(**kwargs)
        trainer, _ = run(tmp_path / cls.__module__, [cb], enable_checkpointing=False)
        results.append((trainer.current_epoch, trainer.global_step, cb.stopped_epoch, cb.wait_count))
    assert results[0] == results[1]
    assert results[0][0] < len(SCORES)


def test_csv_logger_and_lr_monitor_in_a_real_fit_write_lightnings_file(tmp_path):
    files = []
    for name, logger_cls, monitor_cls in (
        ("fl", fll.CSVLogger, flc.LearningRateMonitor),
        ("pl", pl.loggers.CSVLogger, pl.callbacks.LearningRateMonitor),
    ):
        logger = logger_cls(tmp_path / name, name="run")
        run(tmp_path / f"root_{name}", [monitor_cls(log_momentum=True)], logger=logger, max_epochs=2, enable_checkpointing=False)
        files.append([open(os.path.join(logger.log_dir, f)).read() for f in ("metrics.csv", "hparams.yaml")])
    assert files[0] == files[1]
    assert "lr-SGD/pg1" in files[0][0] and "lr-SGD/pg2-momentum" in files[0][0]


def test_tensorboard_logger_in_a_real_fit(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    scalars = []
    for name, cls in (("fl", fll.TensorBoardLogger), ("pl", pl.loggers.TensorBoardLogger)):
        logger = cls(tmp_path / name)
        run(tmp_path / f"root_{name}", [], logger=logger, max_epochs=2, enable_checkpointing=False)
        acc = EventAccumulator(logger.log_dir)
        acc.Reload()
        scalars.append({t: [(e.step, round(e.value, 6)) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]})
    assert scalars[0] == scalars[1] and "train_loss" in scalars[0]


@pytest.mark.parametrize("bar_cls", [flc.TQDMProgressBar, flc.RichProgressBar])
def test_progress_bars_through_fit_validate_test_predict(tmp_path, bar_cls, capsys):
    import rich

    kwargs = {"refresh_rate": 1}
    out = io.StringIO()
    expected = ("Epoch 1", "Validation DataLoader 0", "Testing DataLoader 0", "Predicting DataLoader 0")
    if bar_cls is flc.RichProgressBar:  # rich's tasks are named without the dataloader, as in Lightning
        kwargs["console_kwargs"] = {"file": out, "force_terminal": False, "width": 140}
        expected = ("Epoch 1", "Validation", "Testing", "Predicting")
    console = rich.get_console()
    saved = dict(console.__dict__)  # the rich bar reconfigures rich's global console (as Lightning's): put it back
    try:
        bar = bar_cls(**kwargs)
        trainer, model = run(tmp_path, [bar], max_epochs=2, enable_checkpointing=False)
        train, val = loaders()
        trainer.validate(model, val)
        trainer.test(model, val)
        trainer.predict(model, val)
    finally:
        console.__dict__ = saved
    text = capsys.readouterr().out + out.getvalue()
    for line in expected:
        assert line in text, line
    assert "train_loss" in text
