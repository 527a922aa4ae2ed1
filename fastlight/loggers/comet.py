"""CometLogger: Comet experiments through the `comet_ml` package (`comet_ml.start`).

Online, the experiment streams to the Comet server (API key from `comet login`, COMET_API_KEY or `api_key`).
With `online=False` it is an OfflineExperiment: everything is written to a zip archive in `offline_directory`
(upload it later with `comet upload`, inspect it with `comet offline`).
"""
import logging
import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

from torch import Tensor

from fastlight.utilities.rank_zero import module_logger, rank_zero_only

from ._utils import convert_params, import_client
from .logger import Logger, rank_zero_experiment

log = module_logger(__name__)

FRAMEWORK_NAME = "pytorch-lightning"  # how Comet labels what the integration logged (its UI groups by it)

# Old argument names Lightning still accepts (with a warning): old name -> current name
_RENAMED = {"experiment_name": "name", "project_name": "project", "offline": "online", "save_dir": "offline_directory"}


def _comet() -> Any:
    return import_client("comet_ml", "CometLogger", "comet-ml", "comet")


class CometLogger(Logger):
    """Log to Comet (`pip install comet-ml`).

    Args:
        api_key: Comet API key (better: `comet login` or COMET_API_KEY).
        workspace: Comet workspace (default: the account's default workspace).
        project: Comet project (default: Comet's "Uncategorized").
        experiment_key: key of the experiment to create or continue (32-50 alphanumeric characters).
        mode: "get_or_create", "get" (continue `experiment_key`) or "create" (always a new experiment).
        online: False writes an offline archive instead of streaming to the server.
        prefix: put before every metric name (Comet joins it with "_").
        **kwargs: comet_ml.ExperimentConfig options: name, offline_directory, log_code, tags, ...
            The old names experiment_name, project_name, offline and save_dir are accepted with a warning.
    """

    def __init__(
        self,
        *,
        api_key: Optional[str] = None,
        workspace: Optional[str] = None,
        project: Optional[str] = None,
        experiment_key: Optional[str] = None,
        mode: Optional[str] = None,
        online: Optional[bool] = None,
        prefix: Optional[str] = None,
        **kwargs: Any,
    ) -> None:
        comet_ml = _comet()
        if mode not in (None, "get_or_create", "get", "create"):
            raise ValueError(f"CometLogger(mode={mode!r}): use 'get_or_create', 'get' or 'create'.")
        for old, new in _RENAMED.items():
            if old not in kwargs:
                continue
            value = kwargs.pop(old)
            log.warning(f"CometLogger: `{old}` is deprecated, use `{new}`.")
            if new == "project":
                project = value if project is None else project
            elif new == "online":
                online = (not value) if online is None else online
            elif new not in kwargs:
                kwargs[new] = value
            else:
                log.warning(f"CometLogger: both `{old}` and `{new}` were given; `{new}` is used.")
        self._api_key = api_key
        self._experiment: Any = None
        self._workspace = workspace
        self._mode = mode
        self._online = online
        self._project_name = project
        self._experiment_key = experiment_key
        self._prefix = prefix
        self._kwargs: Dict[str, Any] = kwargs
        # The integration logs what Lightning hands it; Comet's own framework hooks would log the same twice.
        os.environ["COMET_DISABLE_AUTO_LOGGING"] = "1"
        # online=False is Comet's offline mode (an archive on disk); it does not disable the experiment.
        self._comet_config = comet_ml.ExperimentConfig(**kwargs)
        if rank_zero_only.rank != 0:
            return
        self._create_experiment()

    def _create_experiment(self) -> None:
        comet_ml = _comet()
        self._experiment = comet_ml.start(
            api_key=self._api_key,
            workspace=self._workspace,
            project=self._project_name,
            experiment_key=self._experiment_key,
            mode=self._mode,
            online=self._online,
            experiment_config=self._comet_config,
        )
        if self._experiment is None:
            raise comet_ml.exceptions.ExperimentNotFound("CometLogger: comet_ml.start() returned no experiment.")
        self._experiment_key = self._experiment.get_key()
        self._project_name = self._experiment.project_name
        self._experiment.log_other("Created from", FRAMEWORK_NAME)

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The comet_ml Experiment (or OfflineExperiment / ExistingExperiment)."""
        if not self._experiment:
            self._create_experiment()
        return self._experiment

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace]) -> None:
        self.experiment.__internal_api__log_parameters__(
            parameters=convert_params(params), framework=FRAMEWORK_NAME, flatten_nested=True, source="manual"
        )

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Union[Tensor, float]], step: Optional[int] = None) -> None:
        values = {k: v.detach().cpu() if isinstance(v, Tensor) else v for k, v in metrics.items()}
        epoch = values.pop("epoch", None)  # Comet records the epoch as the metrics' epoch, not as a metric
        self.experiment.__internal_api__log_metrics__(
            values, step=step, epoch=epoch, prefix=self._prefix, framework=FRAMEWORK_NAME
        )

    @rank_zero_only
    def finalize(self, status: str) -> None:
        """Send (or, offline, write) what is pending; the experiment stays open so logging can go on after fit.
        `logger.experiment.end()` closes it (offline: writes the archive)."""
        if self._experiment is None:
            return
        self.experiment.flush()

    @property
    def save_dir(self) -> Optional[str]:
        """The offline directory (where offline archives go)."""
        return self._comet_config.offline_directory

    @property
    def name(self) -> Optional[str]:
        """The project name."""
        return self._project_name

    @property
    def version(self) -> Optional[str]:
        """The experiment key (None before the experiment exists)."""
        if self._experiment is not None:
            return self._experiment.get_key()
        return None

    def log_graph(self, model: Any, input_array: Optional[Tensor] = None) -> None:
        if self._experiment is not None:
            self._experiment.__internal_api__set_model_graph__(graph=model, framework=FRAMEWORK_NAME)

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_experiment_key"] = self._experiment.get_key() if self._experiment is not None else None
        state["_experiment"] = None
        return state
