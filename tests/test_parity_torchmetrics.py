"""self.log / self.log_dict with torchmetrics objects, against Lightning running the same user code: the step value
is the metric's forward result, the epoch value its compute(), and the metric is reset at each epoch's end."""
import pytest
import torch
from torch import nn

pl_ref = pytest.importorskip("pytorch_lightning")
torchmetrics = pytest.importorskip("torchmetrics")
from torchmetrics import MaxMetric, MeanMetric, MetricCollection, SumMetric  # noqa: E402
from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision  # noqa: E402

import fastlight as fl  # noqa: E402
from _parity_helpers import build, quiet_warnings, trainer_kwargs  # noqa: E402
from test_parity_metrics import _run as run_and_record  # noqa: E402

quiet_warnings()


def metrics_module(pl):
    class WithMetrics(build(pl)):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.train_acc = MulticlassAccuracy(num_classes=3)
            self.seen = SumMetric()
            self.val_loss_mean = MeanMetric()
            self.val_max = MaxMetric()
            self.val_metrics = MetricCollection([MulticlassAccuracy(num_classes=3), MulticlassPrecision(num_classes=3)],
                                                prefix="val_")

        def training_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            loss = nn.functional.cross_entropy(logits, y)
            self.train_acc(logits, y)  # forward: updates the state and returns this batch's value
            self.log("train_acc", self.train_acc, on_step=True, on_epoch=True, prog_bar=True)
            self.seen.update(torch.tensor(float(len(y))))  # update only: no step value, epoch value = sum
            self.log("seen", self.seen, on_step=False, on_epoch=True)
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            logits = self(x)
            loss = nn.functional.cross_entropy(logits, y)
            self.val_loss_mean.update(loss)
            self.log("val_loss", self.val_loss_mean, prog_bar=True)
            self.val_max(loss)
            self.log("val_max", self.val_max, on_step=True, on_epoch=True)
            self.val_metrics.update(logits, y)
            self.log_dict(self.val_metrics)

        def test_step(self, batch, batch_idx):
            x, y = batch
            self.val_metrics.update(self(x), y)
            self.log_dict(self.val_metrics)

    return WithMetrics


def _run(pl, tmp_path, method="fit", **trainer_kw):
    out = run_and_record(pl, tmp_path, dict(n_train=36, n_val=20), trainer_kw, method=method, cls=metrics_module(pl))
    return out.pop("model"), out


def test_logged_torchmetrics_match_lightning_over_epochs(tmp_path):
    ref_model, ref = _run(pl_ref, tmp_path / "pl", max_epochs=2, log_every_n_steps=2)
    model, got = _run(fl, tmp_path / "fl", max_epochs=2, log_every_n_steps=2)
    assert "train_acc_step" in got["logged"] and "train_acc_epoch" in got["callback"]
    assert got["callback"]["seen"] == 36.0  # reset between epochs: one epoch's samples, not two
    assert {"val_MulticlassAccuracy", "val_MulticlassPrecision", "val_max_epoch"} <= set(got["callback"])
    assert got["callback"] == ref["callback"]
    assert got["logged"] == ref["logged"]
    assert got["pbar"] == ref["pbar"]
    assert got["rows"] == ref["rows"]
    assert got["snaps"] == ref["snaps"]
    # both frameworks reset the user's metric objects at the end of the train epoch / the evaluation run
    assert model.train_acc.update_count == ref_model.train_acc.update_count == 0
    assert model.val_max.update_count == ref_model.val_max.update_count == 0


@pytest.mark.parametrize("method", ["validate", "test"])
def test_evaluation_returns_computed_metrics_like_lightning(method, tmp_path):
    _, ref = _run(pl_ref, tmp_path / "pl", method=method)
    _, got = _run(fl, tmp_path / "fl", method=method)
    assert got["out"] == ref["out"]
    assert got["callback"] == ref["callback"]
    assert got["rows"] == ref["rows"]


def test_metric_that_is_not_a_module_attribute_is_refused_with_the_fix(tmp_path):
    class Loose(build(fl)):
        def training_step(self, batch, batch_idx):
            metric = MeanMetric()
            metric.update(torch.tensor(1.0))
            self.log("loose", metric)
            return super().training_step(batch, batch_idx)

    trainer = fl.Trainer(**trainer_kwargs(tmp_path, max_steps=1, limit_val_batches=0))
    with pytest.raises(ValueError, match="Could not find the `LightningModule` attribute"):
        trainer.fit(Loose())


def test_same_name_as_tensor_and_metric_in_one_hook_is_refused(tmp_path):
    class Mixed(build(fl)):
        def __init__(self):
            super().__init__()
            self.m = MeanMetric()

        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.m.update(loss.detach())
            self.log("x", loss)
            self.log("x", self.m)
            return loss

    trainer = fl.Trainer(**trainer_kwargs(tmp_path, max_steps=1, limit_val_batches=0))
    with pytest.raises(Exception, match="twice"):
        trainer.fit(Mixed())
