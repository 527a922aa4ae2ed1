"""torchmetrics support without depending on it: a value is a Metric only if torchmetrics is already imported."""
import sys
from typing import Any


def is_metric_object(value: Any) -> bool:
    """True for a torchmetrics.Metric (a user who logs one has imported torchmetrics already)."""
    tm = sys.modules.get("torchmetrics")
    return tm is not None and isinstance(value, tm.Metric)


def is_metric_collection(value: Any) -> bool:
    tm = sys.modules.get("torchmetrics")
    return tm is not None and isinstance(value, tm.MetricCollection)
