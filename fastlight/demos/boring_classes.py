"""Small random datasets, modules and datamodules for tests, examples and bug reports.

The names, init arguments, layer shapes, losses, step outputs and data sizes are Lightning's
(`lightning.pytorch.demos.boring_classes`), so code written against those runs unchanged and trains to the same
weights (with `Trainer(fused=False)`; the random draws happen in the same order).
"""
from typing import Any, Dict, Iterator, List, Mapping, Optional, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler
from torch.utils.data import DataLoader, Dataset, IterableDataset, Subset

from fastlight.core.datamodule import LightningDataModule
from fastlight.core.module import LightningModule
from fastlight.core.optimizer import LightningOptimizer

_StepOutput = Union[Tensor, Mapping[str, Any], None]


class RandomDictDataset(Dataset):
    """`length` samples `{"a": x, "b": x + 2}` with x ~ N(0, 1) of shape (size,), drawn once at construction."""

    def __init__(self, size: int, length: int):
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index: int) -> Dict[str, Tensor]:
        sample = self.data[index]
        return {"a": sample, "b": sample + 2}

    def __len__(self) -> int:
        return self.len


class RandomDataset(Dataset):
    """`length` vectors of shape (size,) from N(0, 1), drawn once at construction (torch's global RNG)."""

    def __init__(self, size: int, length: int):
        self.len = length
        self.data = torch.randn(length, size)

    def __getitem__(self, index: int) -> Tensor:
        return self.data[index]

    def __len__(self) -> int:
        return self.len


class RandomIterableDataset(IterableDataset):
    """An iterable of `count` fresh N(0, 1) vectors of shape (size,); no `__len__`."""

    def __init__(self, size: int, count: int):
        self.count = count
        self.size = size

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(self.count):
            yield torch.randn(self.size)


class RandomIterableDatasetWithLen(IterableDataset):
    """Like RandomIterableDataset (not a subclass of it), and it reports its length."""

    def __init__(self, size: int, count: int):
        self.count = count
        self.size = size

    def __iter__(self) -> Iterator[Tensor]:
        for _ in range(len(self)):
            yield torch.randn(self.size)

    def __len__(self) -> int:
        return self.count


class BoringModel(LightningModule):
    """The smallest trainable module: one `Linear(32, 2)` pulled towards ones with an MSE loss, SGD(lr=0.1) with a
    StepLR, and 64 random samples per dataloader. Subclass it and override what a test needs.

    Step outputs: training `{"loss": ...}`, validation `{"x": ...}`, test `{"y": ...}`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.layer = torch.nn.Linear(32, 2)

    def forward(self, x: Tensor) -> Tensor:
        return self.layer(x)

    def loss(self, preds: Tensor, labels: Optional[Tensor] = None) -> Tensor:
        """MSE against `labels`, by default all ones (any target works: it only has to move the weights)."""
        target = torch.ones_like(preds) if labels is None else labels
        return F.mse_loss(preds, target)

    def step(self, batch: Any) -> Tensor:
        return self.loss(self(batch))

    def training_step(self, batch: Any, batch_idx: int) -> _StepOutput:
        return {"loss": self.step(batch)}

    def validation_step(self, batch: Any, batch_idx: int) -> _StepOutput:
        return {"x": self.step(batch)}

    def test_step(self, batch: Any, batch_idx: int) -> _StepOutput:
        return {"y": self.step(batch)}

    def configure_optimizers(self) -> Tuple[List[Optimizer], List[LRScheduler]]:
        optimizer = torch.optim.SGD(self.parameters(), lr=0.1)
        return [optimizer], [torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)]

    def train_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def val_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def test_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(RandomDataset(32, 64))


class _SplitLoaders:
    """The four dataloader hooks of the boring datamodules: one DataLoader over each split `setup` made."""

    def train_dataloader(self) -> DataLoader:
        return DataLoader(self.random_train)

    def val_dataloader(self) -> DataLoader:
        return DataLoader(self.random_val)

    def test_dataloader(self) -> DataLoader:
        return DataLoader(self.random_test)

    def predict_dataloader(self) -> DataLoader:
        return DataLoader(self.random_predict)


class BoringDataModule(_SplitLoaders, LightningDataModule):
    """256 random samples of size 32, split in four blocks of 64: train, val, test, predict (each set up for its
    stage; val also for "validate")."""

    def __init__(self) -> None:
        super().__init__()
        self.random_full = RandomDataset(32, 64 * 4)

    def setup(self, stage: str) -> None:
        block = lambda i: Subset(self.random_full, indices=range(64 * i, 64 * (i + 1)))  # noqa: E731
        if stage == "fit":
            self.random_train = block(0)
        if stage in ("fit", "validate"):
            self.random_val = block(1)
        if stage == "test":
            self.random_test = block(2)
        if stage == "predict":
            self.random_predict = block(3)


class BoringDataModuleNoLen(_SplitLoaders, LightningDataModule):
    """Like BoringDataModule with iterable datasets that have no length (512 train, 128 val, 256 test, 64 predict)."""

    def setup(self, stage: str) -> None:
        if stage == "fit":
            self.random_train = RandomIterableDataset(32, 512)
        if stage in ("fit", "validate"):
            self.random_val = RandomIterableDataset(32, 128)
        if stage == "test":
            self.random_test = RandomIterableDataset(32, 256)
        if stage == "predict":
            self.random_predict = RandomIterableDataset(32, 64)


def _loaders(datasets: List[Dataset]) -> List[DataLoader]:
    return [DataLoader(d) for d in datasets]


class IterableBoringDataModule(LightningDataModule):
    """Two dataloaders per stage, one map-style and one iterable, of size-4 samples (16 train, 32 val, 64 test,
    128 predict each)."""

    def setup(self, stage: str) -> None:
        pair = lambda n: [RandomDataset(4, n), RandomIterableDataset(4, n)]  # noqa: E731
        if stage == "fit":
            self.train_datasets = pair(16)
        if stage in ("fit", "validate"):
            self.val_datasets = pair(32)
        if stage == "test":
            self.test_datasets = pair(64)
        if stage == "predict":
            self.predict_datasets = pair(128)

    def train_dataloader(self) -> List[DataLoader]:
        return _loaders(self.train_datasets)

    def val_dataloader(self) -> List[DataLoader]:
        return _loaders(self.val_datasets)

    def test_dataloader(self) -> List[DataLoader]:
        return _loaders(self.test_datasets)

    def predict_dataloader(self) -> List[DataLoader]:
        return _loaders(self.predict_datasets)


class ManualOptimBoringModel(BoringModel):
    """BoringModel with manual optimization: zero_grad, manual_backward and step in `training_step`, which returns
    the loss tensor."""

    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False

    def training_step(self, batch: Any, batch_idx: int) -> _StepOutput:
        optimizer = self.optimizers()
        assert isinstance(optimizer, (Optimizer, LightningOptimizer))
        loss = self.step(batch)
        optimizer.zero_grad()
        self.manual_backward(loss)
        optimizer.step()
        return loss


class DemoModel(LightningModule):
    """`Linear(32, out_dim)` + ReLU on flattened inputs; the loss is the sum of the outputs; Adam(learning_rate)."""

    def __init__(self, out_dim: int = 10, learning_rate: float = 0.02):
        super().__init__()
        self.l1 = torch.nn.Linear(32, out_dim)
        self.learning_rate = learning_rate

    def forward(self, x: Tensor) -> Tensor:
        return torch.relu(self.l1(x.view(x.size(0), -1)))

    def training_step(self, batch: Any, batch_nb: int) -> _StepOutput:
        return self(batch).sum()

    def configure_optimizers(self) -> Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.learning_rate)


class Net(nn.Module):
    """A small MNIST convnet: two 3x3 convolutions (32, 64 channels), max-pool, dropout, 9216 -> 128 -> 10, and
    log-softmax outputs."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 32, 3, 1)
        self.conv2 = nn.Conv2d(32, 64, 3, 1)
        self.dropout1 = nn.Dropout(0.25)
        self.dropout2 = nn.Dropout(0.5)
        self.fc1 = nn.Linear(9216, 128)
        self.fc2 = nn.Linear(128, 10)

    def forward(self, x: Tensor) -> Tensor:
        x = F.relu(self.conv1(x))
        x = F.relu(self.conv2(x))
        x = self.dropout1(F.max_pool2d(x, 2))
        x = F.relu(self.fc1(torch.flatten(x, 1)))
        return F.log_softmax(self.fc2(self.dropout2(x)), dim=1)
