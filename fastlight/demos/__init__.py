"""Demo models, datamodules and datasets (Lightning's `lightning.pytorch.demos`): for tests, examples and bug reports.

Offline: the WikiText-2 and MNIST demos read local files and never download (see their modules)."""
from fastlight.demos.boring_classes import BoringDataModule, BoringModel, DemoModel
from fastlight.demos.lstm import LightningLSTM, SequenceSampler, SimpleLSTM
from fastlight.demos.transformer import LightningTransformer, Transformer, WikiText2

__all__ = [
    "LightningLSTM",
    "SequenceSampler",
    "SimpleLSTM",
    "LightningTransformer",
    "Transformer",
    "WikiText2",
    "BoringModel",
    "BoringDataModule",
    "DemoModel",
]
