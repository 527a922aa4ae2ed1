"""Parameter and metric helpers shared by the loggers (same conversions as Lightning's loggers)."""
from argparse import Namespace
from collections.abc import Mapping, MutableMapping
from dataclasses import asdict, is_dataclass
from typing import Any, Dict, Optional, Union

from torch import Tensor

from fastlight.utilities._fs import filesystem


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

    fs = filesystem(versions_root)  # a local folder, or a URL through fsspec
    try:
        entries = fs.listdir(versions_root)
    except OSError:  # fsspec's FileNotFoundError included
        return 0
    found = []
    for entry in entries:
        if entry.startswith("version_") and fs.isdir(os.path.join(versions_root, entry)):
            suffix = entry.split("_")[1]
            if suffix.isdigit():
                found.append(int(suffix))
    return max(found) + 1 if found else 0


def sanitize_callable_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """Callables and classes among the values become names: a class its __name__; a callable is called with no
    arguments and its result kept unless that is callable too (then its __name__), as Lightning's loggers do."""
    import inspect

    def name_of(value: Any) -> Any:
        if inspect.isclass(value):
            return value.__name__
        if callable(value):
            try:
                result = value()
            except Exception:
                return getattr(value, "__name__", None)
            return value.__name__ if callable(result) else result
        return value

    return {key: name_of(value) for key, value in params.items()}


def json_safe_params(params: Dict[str, Any]) -> Dict[str, Any]:
    """Values json cannot encode become their str()."""
    import json

    def encodable(value: Any) -> bool:
        if value is None or isinstance(value, (bool, int, float, str, list, dict)):
            return True
        try:
            json.dumps(value)
        except (TypeError, OverflowError, ValueError):
            return False
        return True

    return {key: value if encodable(value) else str(value) for key, value in params.items()}


def import_client(module: str, logger: str, pip_name: str, extra: str) -> Any:
    """Import the client package a logger is built on, or raise ModuleNotFoundError naming the package and how to
    install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as err:
        if err.name is not None and err.name != module and not module.startswith(err.name + "."):
            raise  # the package is there but one of its own dependencies is missing: keep that message
        raise ModuleNotFoundError(
            f"{logger} needs the `{pip_name}` package, which is not installed:"
            f" `pip install {pip_name}` (or `pip install fastlight[{extra}]`)."
        ) from err


def checkpoints_to_log(checkpoint_callback: Any, logged_model_time: Dict[str, float]) -> list:
    """(mtime, path, score, tag) of the checkpoints of `checkpoint_callback` not logged yet, oldest first.

    The candidates are the last checkpoint (tag "latest"), the best one ("best") and every top-k one ("best_k"); a
    path already logged counts again when its file changed since (`logged_model_time` maps path -> mtime logged)."""
    candidates: Dict[str, tuple] = {}
    if hasattr(checkpoint_callback, "last_model_path") and hasattr(checkpoint_callback, "current_score"):
        candidates[checkpoint_callback.last_model_path] = (checkpoint_callback.current_score, "latest")
    if hasattr(checkpoint_callback, "best_model_path") and hasattr(checkpoint_callback, "best_model_score"):
        candidates[checkpoint_callback.best_model_path] = (checkpoint_callback.best_model_score, "best")
    for path, score in getattr(checkpoint_callback, "best_k_models", {}).items():
        candidates[path] = (score, "best_k")
    import os

    found = sorted(
        (os.path.getmtime(path), path, score, tag)
        for path, (score, tag) in candidates.items()
        if path and os.path.isfile(path)
    )
    return [item for item in found if item[1] not in logged_model_time or logged_model_time[item[1]] < item[0]]


def checkpoint_metadata(checkpoint_callback: Any, path: str, score: Any, section: str) -> Dict[str, Any]:
    """What the loggers store next to a logged checkpoint: its score, file name and the callback's settings."""
    import os

    if hasattr(score, "item"):
        score = score.item()  # host sync: metadata needs a number
    settings = ("monitor", "mode", "save_last", "save_top_k", "save_weights_only", "_every_n_train_steps")
    return {
        "score": score,
        "original_filename": os.path.basename(path),
        section: {k: getattr(checkpoint_callback, k) for k in settings if hasattr(checkpoint_callback, k)},
    }
