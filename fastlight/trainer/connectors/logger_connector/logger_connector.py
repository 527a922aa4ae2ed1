"""Lightning's `_LoggerConnector` is fastlight's MetricsHub (fastlight/trainer/results.py), the one object that moves
logged values into the trainer's metric dicts and the loggers; `trainer._logger_connector` is that object."""
from fastlight.trainer.results import MetricsHub

_LoggerConnector = MetricsHub

__all__ = ["_LoggerConnector"]
