"""Parameter and metric helpers shared by the loggers (same conversions as Lightning's loggers)."""
from argparse import Namespace
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, is_dataclass
from typing import Any, Dict, Optional, Union

from torch import Tensor


def convert_params(params: Optional[Union[Dict[str, Any], Namespace]]) -> Dict[str, Any]:
    if isinstance(params, Namespace):
        return vars(params)
    if params is None:
        return {}
    return params


def flatten_dict(params: MutableMapping, delimiter: str = "/", parent_key: str = "") -> Dict[str, Any]:
    """{'a': {'b': 1}} -> {'a/b': 1}; lists of dicts are indexed ('dl/0/a'), other lists kept whole."""
    result: Dict[str, Any] = {}
    for key, value in params.items():
        new_key = f"{parent_key}{delimiter}{key}" if parent_key else str(key)
        if is_dataclass(value) and not isinstance(value, type):
            value = asdict(value)
        elif isinstance(value, Namespace):
            value = vars(value)
        if isinstance(value, MutableMapping):
            result.update(flatten_dict(value, delimiter=delimiter, parent_key=new_key))
        elif isinstance(value, list) and value and all(isinstance(item, MutableMapping) for item in value):
            for i, item in enumerate(value):
                result.update(flatten_dict(item, delimiter=delimiter, parent_key=f"{new_key}/{i}"))
        else:
            result[new_key] = value
    return result


def sanitize_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """Everything but bool/int/float/str/Tensor becomes its str(); numpy scalars become python scalars."""
    for key in params:
        value = params[key]
        if type(value).__module__ == "numpy" and hasattr(value, "item") and getattr(value, "ndim", 1) == 0:
            params[key] = value = value.item()
        if type(value) not in (bool, int, float, str, Tensor):
            params[key] = str(value)
    return params


def add_prefix(metrics: Mapping, prefix: str, separator: str) -> Mapping:
    if not prefix:
        return metrics
    return {f"{prefix}{separator}{k}": v for k, v in metrics.items()}


def next_version(versions_root: str) -> int:
    """1 + the highest N among the version_N folders of `versions_root` (0 when there are none)."""
    import os

    try:
        entries = os.listdir(versions_root)
    except OSError:
        return 0
    found = []
    for entry in entries:
        if entry.startswith("version_") and os.path.isdir(os.path.join(versions_root, entry)):
            suffix = entry.split("_")[1]
            if suffix.isdigit():
                found.append(int(suffix))
    return max(found) + 1 if found else 0
