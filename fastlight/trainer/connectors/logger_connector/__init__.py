"""`trainer.connectors.logger_connector`: the logger connector is fastlight's MetricsHub (trainer._logger_connector)."""
from fastlight.trainer.connectors.logger_connector.logger_connector import _LoggerConnector

__all__ = ["_LoggerConnector"]
