"""fastlight.loggers: Lightning-compatible experiment loggers. TensorBoard is imported only when a writer is made."""
from .csv_logs import CSVLogger
from .logger import DummyLogger, Logger, rank_zero_experiment
from .tensorboard import TensorBoardLogger

__all__ = ["CSVLogger", "DummyLogger", "Logger", "TensorBoardLogger", "rank_zero_experiment"]
