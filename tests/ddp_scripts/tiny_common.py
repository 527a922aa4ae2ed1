"""Model and data shared by the DDP test scripts and the in-test single-process reference."""
import torch
from torch import nn
from torch.utils.data import TensorDataset

N, D = 32, 6


def make_data() -> TensorDataset:
    g = torch.Generator().manual_seed(123)
    x = torch.randn(N, D, generator=g)
    y = torch.randn(N, 2, generator=g)
    return TensorDataset(torch.arange(N), x, y)


class TinyModule(nn.Module):
    """A module with training_step, run through the strategy the way the Trainer will."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(7)
        self.net = nn.Sequential(nn.Linear(D, 8), nn.Tanh(), nn.Linear(8, 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)

    def training_step(self, batch) -> torch.Tensor:
        _, x, y = batch
        return nn.functional.mse_loss(self(x), y)
