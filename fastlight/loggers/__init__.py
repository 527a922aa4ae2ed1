"""fastlight.loggers: Lightning-compatible experiment loggers.

Each client package (tensorboard, wandb, mlflow, comet_ml, neptune) is imported only when its logger is created,
so `import fastlight.loggers` stays light and a missing package fails with the pip command to install it.
"""
from .comet import CometLogger
from .csv_logs import CSVLogger
from .logger import DummyLogger, Logger, rank_zero_experiment
from .mlflow import MLFlowLogger
from .neptune import NeptuneLogger
from .tensorboard import TensorBoardLogger
from .wandb import WandbLogger

__all__ = [
    "CSVLogger",
    "CometLogger",
    "DummyLogger",
    "Logger",
    "MLFlowLogger",
    "NeptuneLogger",
    "TensorBoardLogger",
    "WandbLogger",
    "rank_zero_experiment",
]
