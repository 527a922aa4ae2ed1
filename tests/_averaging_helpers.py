"""User code shared by the weight-averaging and fine-tuning parity tests: a tiny MLP with a BatchNorm layer (optionally
split into `backbone` and `head`), built on top of pytorch_lightning or fastlight (`build_bn(pl)`), and callbacks that
record the learning rates of every step."""
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

import fastlight.ops
from _parity_helpers import make_data

# The Trainer swaps in fused optimizers only with the native kernels (not under FASTLIGHT_KERNELS=torch)
needs_native_kernels = pytest.mark.skipif(fastlight.ops.backend("cpu") != "native",
                                          reason="fused optimizers need the native kernels")


def build_bn(pl):
    class BNModel(pl.LightningModule):
        def __init__(self, optimizer="sgd", scheduler=None, lr=0.1, batch_norm=True, n_train=24, batch_size=8):
            super().__init__()
            self.save_hyperparameters()
            torch.manual_seed(0)
            norm = nn.BatchNorm1d(16) if batch_norm else nn.Identity()
            self.backbone = nn.Sequential(nn.Linear(8, 16), norm, nn.ReLU())
            self.head = nn.Sequential(nn.Linear(16, 8), nn.ReLU(), nn.Linear(8, 3))
            self.step_losses = []

        def forward(self, x):
            return self.head(self.backbone(x))

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = nn.functional.cross_entropy(self(x), y)
            self.log("train_loss", loss)
            return loss

        def on_train_batch_end(self, outputs, batch, batch_idx):
            self.step_losses.append(float(outputs["loss"]))

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", nn.functional.cross_entropy(self(x), y))

        def configure_optimizers(self):
            hp = self.hparams
            # fine-tuning: only what is trainable goes to the optimizer; the callback adds the rest later
            params = [p for p in self.parameters() if p.requires_grad]
            if hp.optimizer == "sgd":
                opt = torch.optim.SGD(params, lr=hp.lr, momentum=0.9)
            elif hp.optimizer == "adam":
                opt = torch.optim.Adam(params, lr=hp.lr)
            else:
                opt = torch.optim.AdamW(params, lr=hp.lr, weight_decay=0.01)
            if hp.scheduler is None:
                return opt
            if hp.scheduler == "step":
                return [opt], [torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.7)]
            if hp.scheduler == "exp_per_step":
                sched = torch.optim.lr_scheduler.ExponentialLR(opt, gamma=0.95)
                return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}
            raise ValueError(hp.scheduler)

        def train_dataloader(self):
            return DataLoader(make_data(self.hparams.n_train), batch_size=self.hparams.batch_size, shuffle=True)

        def val_dataloader(self):
            return DataLoader(make_data(8, seed=7), batch_size=8)

    return BNModel


def lr_recorder(pl):
    """A callback keeping the learning rate of every param group at each training batch start."""

    class LRRecorder(pl.Callback):
        def __init__(self):
            self.lrs = []
            self.max_epochs = []

        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            self.lrs.append((trainer.current_epoch, batch_idx,
                             tuple(g["lr"] for g in trainer.optimizers[0].param_groups)))

        def on_train_epoch_start(self, trainer, pl_module):
            self.max_epochs.append((trainer.current_epoch, trainer.max_epochs, trainer.accumulate_grad_batches,
                                    trainer.num_training_batches))

    return LRRecorder()


def assert_state_dicts_equal(ref, got, exact=True):
    ref_sd, got_sd = ref.state_dict(), got.state_dict()
    assert list(ref_sd) == list(got_sd)
    for k in ref_sd:
        if exact:
            assert torch.equal(ref_sd[k], got_sd[k]), k
        else:
            torch.testing.assert_close(got_sd[k], ref_sd[k], rtol=1e-5, atol=1e-6, msg=k)
