"""A LightningModule run by Lightning Fabric (`fabric.setup(model, optimizer)`), side by side with pytorch_lightning's:
Fabric marks the module (`_fabric`), then self.log / log_dict reach Fabric's loggers, `self.optimizers()` is
Fabric's optimizer, manual_backward and clip_gradients go through Fabric, and `self.trainer` reads the Fabric."""
import weakref
from unittest.mock import Mock

import pytest
import torch
from torch import nn

import fastlight

pl = pytest.importorskip("pytorch_lightning")
lightning_fabric = pytest.importorskip("lightning_fabric")


class _RecordingLogger(lightning_fabric.loggers.Logger):
    def __init__(self):
        super().__init__()
        self.rows = []

    @property
    def name(self):
        return "recording"

    @property
    def version(self):
        return 0

    def log_metrics(self, metrics, step=None):
        self.rows.append(({k: float(v) for k, v in metrics.items()}, step))

    def log_hyperparams(self, params, *args, **kwargs):
        pass


def _module_cls(framework):
    class Model(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)
            self.automatic_optimization = False

        def training_step(self, batch, batch_idx):
            opt = self.optimizers()
            loss = self.layer(batch).pow(2).mean()
            opt.zero_grad()
            self.manual_backward(loss)
            self.clip_gradients(opt, gradient_clip_val=0.05, gradient_clip_algorithm="norm")
            opt.step()
            self.log("loss", loss)
            self.log_dict({"a": 1.0, "b": torch.tensor(2.0)})
            self.log("hidden", 3.0, logger=False)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.5)

    return Model


def _run_under_fabric(framework):
    torch.manual_seed(0)
    logger = _RecordingLogger()
    fabric = lightning_fabric.Fabric(accelerator="cpu", devices=1, loggers=[logger])
    model = _module_cls(framework)()
    model, optimizer = fabric.setup(model, model.configure_optimizers())
    module = model.module
    assert module.fabric is not None and module.trainer.global_rank == 0 and module.trainer.world_size == 1
    assert module.optimizers() is optimizer and module.logger is logger
    g = torch.Generator().manual_seed(1)
    for i in range(3):
        module.training_step(torch.randn(8, 4, generator=g), i)
    return logger.rows, {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_a_module_under_fabric_logs_steps_and_clips_through_it_as_in_lightning():
    rows_pl, weights_pl = _run_under_fabric(pl)
    rows_fl, weights_fl = _run_under_fabric(fastlight)
    assert rows_fl == rows_pl
    assert [sorted(r) for r, _ in rows_fl[:2]] == [["loss"], ["a", "b"]]
    for k in weights_pl:
        assert torch.equal(weights_fl[k], weights_pl[k]), k


def test_trainer_attributes_fabric_lacks_are_named():
    module = _module_cls(fastlight)()
    fabric = Mock(spec=["global_rank"])  # (the module holds it weakly)
    module.fabric = fabric
    with pytest.raises(AttributeError, match="self.trainer.current_epoch"):
        module.trainer.current_epoch


@pytest.mark.parametrize("framework", [pl, fastlight], ids=["lightning", "fastlight"])
def test_fabric_reference_is_shared_with_nested_modules_and_held_weakly(framework):
    outer, inner = framework.LightningModule(), framework.LightningModule()
    outer.inner = inner
    assert inner.fabric is None
    fabric = Mock()
    outer.fabric = fabric
    assert outer.fabric is inner.fabric
    assert inner.fabric is weakref.proxy(fabric)
    outer.fabric = None
    assert inner.fabric is None
