"""The small fit both real-loop comparisons run (test_checkpoint_fit.py, test_surface_in_lightning_loop.py): a linear
regression whose validation also logs a scripted "score", so that top-k and early-stopping decisions are the same
under every framework and every run."""
import os

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

SCORES = [0.9, 0.5, 0.7, 0.4, 0.45, 0.46, 0.47, 0.1]


def make_module(framework, prog_bar=False):
    """The LightningModule class for `framework` (fastlight or pytorch_lightning); `prog_bar` for train_loss."""

    class Net(framework.LightningModule):
        def __init__(self, lr=0.05):
            super().__init__()
            self.save_hyperparameters()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.mse_loss(self.layer(x), y)
            self.log("train_loss", loss, prog_bar=prog_bar)
            return loss

        def validation_step(self, batch, batch_idx):
            x, y = batch
            self.log("val_loss", F.mse_loss(self.layer(x), y))
            self.log("score", torch.tensor(SCORES[self.current_epoch % len(SCORES)]))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    return Net


def loaders():
    """Train and validation loaders over the same 32 samples (batch 8 and 16)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(32, 4, generator=g)
    data = TensorDataset(x, x.sum(1, keepdim=True))
    return DataLoader(data, batch_size=8), DataLoader(data, batch_size=16)


def checkpoint_outcome(callback, folder, digits=6):
    """What a ModelCheckpoint left after a fit, for comparing fastlight's with Lightning's: the files in `folder`, the
    best and last file names, and the top-k scores rounded to `digits`."""
    return (
        sorted(os.listdir(folder)),
        os.path.basename(callback.best_model_path),
        {os.path.basename(k): round(float(v), digits) for k, v in callback.best_k_models.items()},
        os.path.basename(callback.last_model_path),
    )
