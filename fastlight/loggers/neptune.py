"""NeptuneLogger: Neptune runs through the `neptune` client (1.x).

Everything goes under one namespace of the run (`prefix`, default "training"): metrics as series
("training/<key>"), hyperparameters under "training/hyperparams", checkpoints under "training/model/checkpoints".
neptune.init_run's modes work as usual: "async" (default), "sync", "offline" (operations kept on disk under
.neptune/, uploaded later with `neptune sync`), "debug" (kept in memory), "read-only".

Lightning 2.6.4 replaced its NeptuneLogger by one that raises at construction (Neptune's hosted service was shut
down); this is the logger of Lightning up to 2.6.1, for self-hosted servers and offline use.
"""
import contextlib
import functools
import os
from argparse import Namespace
from typing import Any, Callable, Dict, Iterator, Optional, Set, Union

from torch import Tensor

from fastlight.utilities.rank_zero import rank_zero_only

from ._utils import add_prefix, convert_params, import_client, sanitize_callable_params
from .logger import Logger, rank_zero_experiment

_INTEGRATION_VERSION_KEY = "source_code/integrations/fastlight"


def _neptune() -> Any:
    return import_client("neptune", "NeptuneLogger", "neptune", "neptune")


def _fastlight_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fastlight")
    except PackageNotFoundError:
        return "unknown"


def _skip_if_inactive(fn: Callable) -> Callable:
    """Logging to a run that was stopped is a no-op (Neptune raises InactiveRunException), as in Lightning."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from neptune.exceptions import InactiveRunException

        with contextlib.suppress(InactiveRunException):
            return fn(*args, **kwargs)

    return wrapper


class NeptuneLogger(Logger):
    """Log to Neptune (`pip install neptune`). Keyword arguments only.

    Args:
        api_key: Neptune API token (better: the NEPTUNE_API_TOKEN environment variable).
        project: "workspace/project" (default: the NEPTUNE_PROJECT environment variable).
        name: name of the run.
        run: an existing `neptune.Run`, or a namespace handler of one (`run["finetune"]`), to log into instead of
            creating a run; then none of api_key/project/name/neptune_run_kwargs may be given.
        log_model_checkpoints: upload the checkpoints ModelCheckpoint saves (and drop the ones it deleted).
        prefix: root namespace of everything logged; "" logs at the run's root.
        **neptune_run_kwargs: passed to `neptune.init_run` (mode, tags, description, capture_stdout, ...).
    """

    LOGGER_JOIN_CHAR = "/"
    PARAMETERS_KEY = "hyperparams"
    ARTIFACTS_KEY = "artifacts"

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        project: Optional[str] = None,
        name: Optional[str] = None,
        run: Any = None,
        log_model_checkpoints: Optional[bool] = True,
        prefix: str = "training",
        **neptune_run_kwargs: Any,
    ) -> None:
        neptune = _neptune()
        from neptune.handler import Handler

        if run is not None and not isinstance(run, (neptune.Run, Handler)):
            raise ValueError(
                f"NeptuneLogger(run=...) expects a neptune.Run or a namespace handler of one, got {type(run).__name__}."
            )
        if run is not None and (any(a is not None for a in (api_key, project, name)) or neptune_run_kwargs):
            raise ValueError(
                "NeptuneLogger(run=...) logs to that run: api_key, project, name and other neptune.init_run()"
                " arguments cannot be given with it."
            )
        self._log_model_checkpoints = log_model_checkpoints
        self._prefix = prefix
        self._run_name = name
        self._project_name = project
        self._api_key = api_key
        self._run_instance = run
        self._neptune_run_kwargs = neptune_run_kwargs
        self._run_short_id: Optional[str] = None
        if self._run_instance is not None:
            self._read_run_ids()
            self._root_object()[_INTEGRATION_VERSION_KEY] = _fastlight_version()

    def _root_object(self) -> Any:
        from neptune.handler import Handler

        root = self._run_instance
        return root.get_root_object() if isinstance(root, Handler) else root

    def _read_run_ids(self) -> None:
        """Short id and name of the run; an offline run has neither ("OFFLINE", "offline-name" as in Lightning)."""
        root = self._root_object()
        root.wait()
        if root.exists("sys/id"):
            self._run_short_id = root["sys/id"].fetch()
            self._run_name = root["sys/name"].fetch()
        else:
            self._run_short_id = "OFFLINE"
            self._run_name = "offline-name"

    @property
    def _neptune_init_args(self) -> Dict[str, Any]:
        args = dict(self._neptune_run_kwargs)
        if self._project_name is not None:
            args["project"] = self._project_name
        if self._api_key is not None:
            args["api_token"] = self._api_key
        if self._run_short_id not in (None, "OFFLINE"):
            args["with_id"] = self._run_short_id  # reconnect to the same run (after unpickling)
        if self._run_name is not None:
            args["name"] = self._run_name
        return args

    def _path(self, *keys: str) -> str:
        """`keys` joined with "/" under the prefix namespace."""
        return self.LOGGER_JOIN_CHAR.join([self._prefix, *keys] if self._prefix else list(keys))

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The neptune Run (created on first use); log anything with `experiment["a/b"] = ...` or `.append(...)`."""
        return self.run

    @property
    @rank_zero_experiment
    def run(self) -> Any:
        if not self._run_instance:
            self._run_instance = _neptune().init_run(**self._neptune_init_args)
            self._read_run_ids()
            self._run_instance[_INTEGRATION_VERSION_KEY] = _fastlight_version()
        return self._run_instance

    @rank_zero_only
    @_skip_if_inactive
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace]) -> None:
        """Hyperparameters go to "<prefix>/hyperparams", nested dicts kept as namespaces."""
        from neptune.utils import stringify_unsupported

        params = sanitize_callable_params(convert_params(params))
        self.run[self._path(self.PARAMETERS_KEY)] = stringify_unsupported(params)

    @rank_zero_only
    @_skip_if_inactive
    def log_metrics(self, metrics: Dict[str, Union[Tensor, float]], step: Optional[int] = None) -> None:
        """Each metric is appended to the series "<prefix>/<key>" at `step`."""
        from .csv_logs import tensors_to_numbers

        metrics = tensors_to_numbers(dict(metrics))
        for key, value in add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR).items():
            self.run[key].append(value, step=step)

    @rank_zero_only
    @_skip_if_inactive
    def finalize(self, status: str) -> None:
        """Record the status under "<prefix>/status"; the run stays open (`logger.run.stop()` ends it)."""
        if not self._run_instance:
            return
        if status:
            self.run[self._path("status")] = status
        super().finalize(status)

    @property
    def save_dir(self) -> Optional[str]:
        """Where the client keeps local data (offline runs, upload queues): ./.neptune."""
        return os.path.join(os.getcwd(), ".neptune")

    @rank_zero_only
    @_skip_if_inactive
    def log_model_summary(self, model: Any, max_depth: int = -1) -> None:
        """Upload a text summary of `model` to "<prefix>/model/summary": its module tree (nested `max_depth` levels,
        -1 for all) and parameter counts."""
        from neptune.types import File

        lines = []
        for name, module in model.named_modules():
            depth = name.count(".") + 1 if name else 0
            if name and max_depth >= 0 and depth > max_depth:
                continue
            own = sum(p.numel() for p in module.parameters(recurse=False))
            total = sum(p.numel() for p in module.parameters())
            lines.append(f"{'  ' * depth}{name or '(model)'}: {type(module).__name__}, {total} params ({own} own)")
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        lines.append(f"trainable params: {trainable}; total params: {sum(p.numel() for p in model.parameters())}")
        self.run[self._path("model/summary")] = File.from_content(content="\n".join(lines), extension="txt")

    @rank_zero_only
    @_skip_if_inactive
    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Upload the checkpoints the callback keeps (last, top-k, best) under "<prefix>/model/checkpoints/<name>",
        delete the uploaded ones it no longer keeps, and record the best path and score."""
        if not self._log_model_checkpoints:
            return
        namespace = self._path("model/checkpoints")
        kept: Set[str] = set()
        paths = [getattr(checkpoint_callback, "last_model_path", "")]
        paths += list(getattr(checkpoint_callback, "best_k_models", {}))
        best_path = getattr(checkpoint_callback, "best_model_path", "")
        if best_path:
            self.run[self._path("model/best_model_path")] = best_path
        paths.append(best_path)
        for path in paths:
            if path:
                model_name = self._model_name(path, checkpoint_callback)
                kept.add(model_name)
                self.run[f"{namespace}/{model_name}"].upload(path)
        if self.run.exists(namespace):
            structure = self.run.get_structure()
            for key in namespace.split(self.LOGGER_JOIN_CHAR):
                structure = structure[key]
            for stale in set(self._leaf_paths(structure)) - kept:
                del self.run[f"{namespace}/{stale}"]
        best_score = getattr(checkpoint_callback, "best_model_score", None)
        if best_score is not None and best_score:
            self.run[self._path("model/best_model_score")] = best_score.cpu().detach().numpy()

    @staticmethod
    def _model_name(path: str, checkpoint_callback: Any) -> str:
        """The checkpoint's path relative to the callback's dirpath, without extension, "/"-separated."""
        dirpath = getattr(checkpoint_callback, "dirpath", None)
        if dirpath is None:
            return path.replace(os.sep, "/")
        path, dirpath = os.path.normpath(path), os.path.normpath(dirpath)
        if not path.startswith(dirpath):
            raise ValueError(f"NeptuneLogger: checkpoint {path} is not under the callback's dirpath {dirpath}.")
        stem, _ = os.path.splitext(path[len(dirpath) + 1 :])
        return stem.replace(os.sep, "/")

    @classmethod
    def _leaf_paths(cls, tree: Dict[str, Any], parent: Optional[str] = None) -> Iterator[str]:
        for key, value in tree.items():
            path = key if parent is None else f"{parent}/{key}"
            if isinstance(value, dict):
                yield from cls._leaf_paths(value, path)
            else:
                yield path

    @property
    def name(self) -> Optional[str]:
        """The run's name ("offline-name" for an offline run)."""
        return self._run_name

    @property
    def version(self) -> Optional[str]:
        """The run's short id ("OFFLINE" for an offline run)."""
        return self._run_short_id

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_run_instance"] = None
        return state

    def __setstate__(self, state: Dict[str, Any]) -> None:
        self.__dict__ = state
        self._run_instance = _neptune().init_run(**self._neptune_init_args)
