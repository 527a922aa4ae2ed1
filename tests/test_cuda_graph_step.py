"""Trainer(cuda_graphs=True) on a CUDA device: the whole step captured, verified and replayed; results equal an
eager run's (fp32 tolerance: the same kernels run, replayed), including dropout (graph-safe RNG), per-step LR
schedules, clipping, 16-mixed (found_inf skip, on-device scale update) and bf16-mixed; a host sync inside
training_step falls back to eager naming the line. The orchestration itself is tested on the CPU
(test_graph_step.py)."""
import logging

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
import fastlight.ops as ops

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.fixture(autouse=True)
def _native_cuda():
    if ops.backend("cuda") != "native":
        pytest.skip(f"no native CUDA kernels: {ops.backend_reason('cuda')}")


def _data(n=100):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 32, generator=g), torch.randint(0, 10, (n,), generator=g))


class Net(fl.LightningModule):
    def __init__(self, optimizer="adamw", dropout=0.1, sync=False):
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.Dropout(dropout), torch.nn.ReLU(),
                                       torch.nn.Linear(64, 10))
        self.optimizer, self.sync = optimizer, sync
        self.losses = []

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.cross_entropy(self.net(x), y)
        if self.sync:
            float(loss)  # a host sync: not capturable
        self.log("train_loss", loss, on_epoch=True, prog_bar=True)
        return loss

    def on_train_batch_end(self, outputs, batch, batch_idx):
        self.losses.append(outputs["loss"].detach().float().cpu())

    def configure_optimizers(self):
        if self.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=0.05, momentum=0.9)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=3e-3)
        sched = torch.optim.lr_scheduler.StepLR(opt, step_size=4, gamma=0.7)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def _fit(tmp_path, graphs, model, **kw):
    torch.manual_seed(5)
    trainer = fl.Trainer(accelerator="cuda", devices=1, max_epochs=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
                         cuda_graphs=graphs, **kw)
    trainer.fit(model, DataLoader(_data(), batch_size=16, shuffle=True))  # 7 batches, the last one of 4
    return model, trainer


@pytest.mark.parametrize("optimizer,kw", [
    ("adamw", {}),
    ("sgd", dict(gradient_clip_val=0.1)),
    ("adamw", dict(precision="16-mixed", gradient_clip_val=1.0)),
    ("sgd", dict(precision="bf16-mixed")),
])
def test_captured_fit_matches_eager(optimizer, kw, tmp_path, caplog):
    ref_model, ref = _fit(tmp_path, False, Net(optimizer), **kw)
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        model, trainer = _fit(tmp_path, True, Net(optimizer), **kw)
    graph = trainer.fit_loop._graph
    assert graph is not None and not graph.failed and graph.graph is not None, [r.getMessage() for r in caplog.records]
    assert any("captured" in r.getMessage() for r in caplog.records)
    assert trainer.global_step == ref.global_step
    tol = dict(rtol=1e-4, atol=1e-5) if "precision" not in kw else dict(rtol=2e-2, atol=2e-3)
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        torch.testing.assert_close(a, b, **tol)
    torch.testing.assert_close(torch.stack(model.losses), torch.stack(ref_model.losses), **tol)
    torch.testing.assert_close(trainer.callback_metrics["train_loss_epoch"].cpu(),
                               ref.callback_metrics["train_loss_epoch"].cpu(), **tol)
    assert trainer.optimizers[0].param_groups[0]["lr"] == ref.optimizers[0].param_groups[0]["lr"]


def test_dropout_masks_change_between_replays(tmp_path):
    """Same batch replayed twice from the same weights (lr 0): different losses, as eager dropout gives."""
    class Same(Net):
        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.0)

    model = Same(dropout=0.5)
    torch.manual_seed(5)
    trainer = fl.Trainer(accelerator="cuda", devices=1, max_steps=8, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
                         cuda_graphs=True)
    x = torch.randn(16, 32)
    y = torch.randint(0, 10, (16,))
    trainer.fit(model, DataLoader(TensorDataset(x.repeat(8, 1), y.repeat(8)), batch_size=16))
    assert trainer.fit_loop._graph.graph is not None
    replayed = model.losses[4:]
    assert len({round(float(v), 6) for v in replayed}) > 1


def test_host_sync_in_training_step_falls_back_naming_the_line(tmp_path, caplog):
    ref_model, _ = _fit(tmp_path, False, Net(sync=True))
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        model, trainer = _fit(tmp_path, True, Net(sync=True))
    msgs = [r.getMessage() for r in caplog.records if "cuda_graphs" in r.getMessage()]
    assert len(msgs) == 1 and "capture failed" in msgs[0] and "test_cuda_graph_step.py" in msgs[0], msgs
    assert trainer.fit_loop._graph.failed
    for a, b in zip(model.state_dict().values(), ref_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fused_false_is_refused_on_cuda(tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        _, trainer = _fit(tmp_path, True, Net(), fused=False)
    assert trainer.fit_loop._graph is None
    assert any("fused engine" in r.getMessage() for r in caplog.records)
