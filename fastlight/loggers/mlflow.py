"""MLFlowLogger: MLflow runs through `mlflow.tracking.MlflowClient` (the `mlflow` or `mlflow-skinny` package).

Any tracking store MLflow supports works: a local folder (`file:` URI), a database (`sqlite:///mlflow.db`, needs
sqlalchemy and alembic), or a tracking server (`http://...`). Metrics and parameters are sent with `log_batch`;
checkpoints become run artifacts (one folder per checkpoint) when `log_model` asks.
"""
import logging
import os
import re
import tempfile
import time
from argparse import Namespace
from typing import Any, Dict, List, Mapping, Optional, Union

from fastlight.utilities.rank_zero import module_logger, rank_zero_only, rank_zero_warn

from ._utils import add_prefix, checkpoint_metadata, checkpoints_to_log, convert_params, flatten_dict, import_client
from .logger import Logger, rank_zero_experiment

log = module_logger(__name__)

LOCAL_FILE_URI_PREFIX = "file:"
_PARAM_VALUE_LIMIT = 250  # characters kept of a parameter value (Lightning's limit; old MLflow servers reject more)
_PARAMS_PER_BATCH = 100  # MLflow's limit of parameters per log_batch call


def _mlflow() -> Any:
    return import_client("mlflow", "MLFlowLogger", "mlflow", "mlflow")


class MLFlowLogger(Logger):
    """Log to MLflow (`pip install mlflow` or `mlflow-skinny`).

    Args:
        experiment_name: MLflow experiment the run belongs to (created when missing).
        run_name: name of the run (the "mlflow.runName" tag; replaces one given in `tags`).
        tracking_uri: where the tracking store is: `file:<folder>`, `sqlite:///<file>`, `http://host:port`, ...
            Default: the MLFLOW_TRACKING_URI environment variable, else `file:<save_dir>`.
        tags: tags of the run.
        save_dir: local folder of the file store, used when no tracking_uri is given.
        log_model: log ModelCheckpoint's checkpoints as run artifacts: "all" each time one is saved; True at the end
            of a successful fit (as they are saved when the callback keeps every checkpoint, save_top_k=-1);
            False (default) never.
        prefix: put before every metric key, joined with "-".
        artifact_location: where a newly created experiment stores artifacts (default: the store decides).
        run_id: log to this existing run instead of starting a new one.
        synchronous: wait for every logging call to complete (True) or let MLflow send asynchronously (False);
            None keeps MLflow's default. Needs mlflow >= 2.8.
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        experiment_name: str = "lightning_logs",
        run_name: Optional[str] = None,
        tracking_uri: Optional[str] = None,
        tags: Optional[Dict[str, Any]] = None,
        save_dir: Optional[Union[str, os.PathLike]] = "./mlruns",
        log_model: Union[str, bool] = False,
        prefix: str = "",
        artifact_location: Optional[str] = None,
        run_id: Optional[str] = None,
        synchronous: Optional[bool] = None,
    ) -> None:
        mlflow = _mlflow()
        if synchronous is not None:
            from packaging.version import Version

            if Version(mlflow.__version__) < Version("2.8.0"):
                raise ModuleNotFoundError(
                    f"MLFlowLogger(synchronous={synchronous}) needs mlflow >= 2.8 (found {mlflow.__version__}):"
                    " `pip install -U mlflow`."
                )
        if log_model not in (True, False, "all"):
            raise ValueError(f"MLFlowLogger(log_model={log_model!r}): use True, False or 'all'.")
        tracking_uri = tracking_uri or os.getenv("MLFLOW_TRACKING_URI")
        if not tracking_uri:
            tracking_uri = f"{LOCAL_FILE_URI_PREFIX}{os.fspath(save_dir)}"
        self._experiment_name = experiment_name
        self._experiment_id: Optional[str] = None
        self._tracking_uri = tracking_uri
        self._run_name = run_name
        self._run_id = run_id
        self.tags = tags
        self._log_model = log_model
        self._logged_model_time: Dict[str, float] = {}
        self._checkpoint_callback: Any = None
        self._prefix = prefix
        self._artifact_location = artifact_location
        self._log_batch_kwargs = {} if synchronous is None else {"synchronous": synchronous}
        self._initialized = False

        from mlflow.exceptions import MlflowException
        from mlflow.tracking import MlflowClient

        try:
            self._mlflow_client = MlflowClient(tracking_uri)
        except MlflowException as err:
            if "MLFLOW_ALLOW_FILE_STORE" in str(err):
                raise MlflowException(
                    f"MLFlowLogger(tracking_uri={tracking_uri!r}): mlflow {mlflow.__version__} refuses to open a"
                    " file store unless MLFLOW_ALLOW_FILE_STORE=true is set. Pass a database store instead, e.g."
                    " tracking_uri='sqlite:///mlflow.db' (needs sqlalchemy and alembic), or set that variable."
                ) from err
            raise

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The MlflowClient; the experiment and run are found or created on first use."""
        if self._initialized:
            return self._mlflow_client
        mlflow = _mlflow()
        mlflow.set_tracking_uri(self._tracking_uri)
        client = self._mlflow_client
        if self._run_id is not None:
            self._experiment_id = client.get_run(self._run_id).info.experiment_id
            self._initialized = True
            return client
        if self._experiment_id is None:
            found = client.get_experiment_by_name(self._experiment_name)
            if found is not None and found.lifecycle_stage != "deleted":
                self._experiment_id = found.experiment_id
            else:
                log.warning(f"MLflow experiment {self._experiment_name!r} not found: creating it.")
                self._experiment_id = client.create_experiment(
                    name=self._experiment_name, artifact_location=self._artifact_location
                )
        if self._run_name is not None:
            from mlflow.utils.mlflow_tags import MLFLOW_RUN_NAME

            self.tags = dict(self.tags or {})
            if MLFLOW_RUN_NAME in self.tags:
                log.warning(f"MLFlowLogger: tag {MLFLOW_RUN_NAME} is replaced by run_name={self._run_name!r}.")
            self.tags[MLFLOW_RUN_NAME] = self._run_name
        from mlflow.tracking.context.registry import resolve_tags

        run = client.create_run(experiment_id=self._experiment_id, tags=resolve_tags(self.tags))
        self._run_id = run.info.run_id
        self._initialized = True
        return client

    @property
    def run_id(self) -> Optional[str]:
        """The run id (starts the run if needed)."""
        _ = self.experiment
        return self._run_id

    @property
    def experiment_id(self) -> Optional[str]:
        """The experiment id (creates the experiment if needed)."""
        _ = self.experiment
        return self._experiment_id

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace]) -> None:
        from mlflow.entities import Param

        params = flatten_dict(convert_params(params))
        entries = [Param(key=k, value=str(v)[:_PARAM_VALUE_LIMIT]) for k, v in params.items()]
        for start in range(0, len(entries), _PARAMS_PER_BATCH):
            self.experiment.log_batch(
                run_id=self.run_id, params=entries[start : start + _PARAMS_PER_BATCH], **self._log_batch_kwargs
            )

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        from mlflow.entities import Metric

        from .csv_logs import tensors_to_numbers

        metrics = tensors_to_numbers(dict(add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)))
        timestamp_ms = int(time.time() * 1000)
        entries: List[Any] = []
        for key, value in metrics.items():
            if isinstance(value, str):
                log.warning(f"MLFlowLogger: metric {key}={value!r} is a string; MLflow metrics are numbers: dropped.")
                continue
            allowed = re.sub(r"[^a-zA-Z0-9_/. -]+", "", key)
            if allowed != key:
                rank_zero_warn(
                    f"MLFlowLogger: MLflow metric names may only use letters, digits and '_', '/', '.', ' ', '-':"
                    f" {key!r} is logged as {allowed!r}.",
                    category=RuntimeWarning,
                )
                key = allowed
            entries.append(Metric(key=key, value=value, timestamp=timestamp_ms, step=step or 0))
        self.experiment.log_batch(run_id=self.run_id, metrics=entries, **self._log_batch_kwargs)

    @rank_zero_only
    def finalize(self, status: str = "success") -> None:
        if not self._initialized:
            return
        status = {"success": "FINISHED", "finished": "FINISHED", "failed": "FAILED"}.get(status, status)
        if self._checkpoint_callback is not None:
            self._log_checkpoints(self._checkpoint_callback)
        if self.experiment.get_run(self.run_id):
            self.experiment.set_terminated(self.run_id, status)

    @property
    def save_dir(self) -> Optional[str]:
        """The local folder of a `file:` tracking store; None for any other store."""
        if self._tracking_uri.startswith(LOCAL_FILE_URI_PREFIX):
            return self._tracking_uri[len(LOCAL_FILE_URI_PREFIX) :]
        return None

    @property
    def name(self) -> Optional[str]:
        """The experiment id."""
        return self.experiment_id

    @property
    def version(self) -> Optional[str]:
        """The run id."""
        return self.run_id

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all" or (self._log_model is True and checkpoint_callback.save_top_k == -1):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callback = checkpoint_callback

    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        """Each new checkpoint goes to the artifact folder named after its file stem, with metadata.yaml (score,
        file name, callback settings) and aliases.txt ("latest", plus "best" for the best one)."""
        import yaml

        for mtime, path, score, _ in checkpoints_to_log(checkpoint_callback, self._logged_model_time):
            metadata = checkpoint_metadata(checkpoint_callback, path, score, "Checkpoint")
            aliases = ["latest", "best"] if path == checkpoint_callback.best_model_path else ["latest"]
            artifact_path = os.path.splitext(os.path.basename(path))[0]
            self.experiment.log_artifact(self._run_id, path, artifact_path)
            with tempfile.TemporaryDirectory() as tmp:
                with open(os.path.join(tmp, "metadata.yaml"), "w") as fp:
                    yaml.dump(metadata, fp, default_flow_style=False)
                with open(os.path.join(tmp, "aliases.txt"), "w") as fp:
                    fp.write(str(aliases))
                self.experiment.log_artifacts(self._run_id, tmp, artifact_path)
            self._logged_model_time[path] = mtime
