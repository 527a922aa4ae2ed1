"""WandbLogger: Weights & Biases runs through the `wandb` package (imported when the logger is made).

Metrics go to `run.log` with the trainer's step as the "trainer/global_step" column (declared as the x-axis of every
metric, as Lightning does), hyperparameters to `run.config`, checkpoints to "model" artifacts when `log_model` asks.
"""
import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.rank_zero import rank_zero_only, rank_zero_warn

from ._utils import (
    add_prefix,
    checkpoint_metadata,
    checkpoints_to_log,
    convert_params,
    import_client,
    json_safe_params,
    sanitize_callable_params,
)
from .logger import Logger, rank_zero_experiment

STEP_KEY = "trainer/global_step"


def _wandb() -> Any:
    return import_client("wandb", "WandbLogger", "wandb", "wandb")


class WandbLogger(Logger):
    """Log to Weights & Biases (`pip install wandb`).

    Args:
        name: display name of the run.
        save_dir: folder wandb writes its run files under (wandb's `dir`).
        version: run id, e.g. to resume a run (same as `id`).
        offline: write the run locally only (sync it later with `wandb sync`); cannot be combined with `log_model`.
        dir: same as `save_dir` (used when `save_dir` is None).
        id: same as `version`.
        anonymous: allow anonymous logging.
        project: project of the run; default: the WANDB_PROJECT environment variable, else "lightning_logs".
        log_model: log ModelCheckpoint's checkpoints as "model" artifacts (aliases "latest" and "best"):
            "all" each time one is saved; True at the end of a successful fit (as they are saved when the callback
            keeps every checkpoint, save_top_k=-1); False (default) never.
        experiment: an existing wandb run to log to.
        prefix: put before every metric key, joined with "-".
        checkpoint_name: name of the checkpoint artifact (default "model-<run id>").
        add_file_policy: "mutable" (copy the checkpoint before upload) or "immutable".
        **kwargs: passed to `wandb.init` (entity, group, tags, config, mode, ...).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: Optional[str] = None,
        save_dir: Union[str, os.PathLike] = ".",
        version: Optional[str] = None,
        offline: bool = False,
        dir: Optional[Union[str, os.PathLike]] = None,
        id: Optional[str] = None,
        anonymous: Optional[bool] = None,
        project: Optional[str] = None,
        log_model: Union[str, bool] = False,
        experiment: Any = None,
        prefix: str = "",
        checkpoint_name: Optional[str] = None,
        add_file_policy: str = "mutable",
        **kwargs: Any,
    ) -> None:
        _wandb()  # fail here, with the install hint, when wandb is missing
        if offline and log_model:
            raise MisconfigurationException(
                f"WandbLogger(log_model={log_model!r}, offline=True): checkpoints cannot be uploaded from an offline"
                " run. Use offline=False to log checkpoints, or log_model=False."
            )
        if log_model not in (True, False, "all"):
            raise ValueError(f"WandbLogger(log_model={log_model!r}): use True, False or 'all'.")
        if add_file_policy not in ("mutable", "immutable"):
            raise ValueError(f"WandbLogger(add_file_policy={add_file_policy!r}): use 'mutable' or 'immutable'.")
        self._offline = offline
        self._log_model = log_model
        self._prefix = prefix
        self._experiment = experiment
        self._logged_model_time: Dict[str, float] = {}
        self._checkpoint_callbacks: Dict[int, Any] = {}
        self._checkpoint_name = checkpoint_name
        self.add_file_policy = add_file_policy
        if save_dir is not None:
            save_dir = os.fspath(save_dir)
        elif dir is not None:
            dir = os.fspath(dir)
        self._wandb_init: Dict[str, Any] = {
            "name": name,
            "project": project or os.environ.get("WANDB_PROJECT", "lightning_logs"),
            "dir": save_dir or dir,
            "id": version or id,
            "resume": "allow",
        }
        if anonymous is not None:  # recent wandb warns about the setting whenever it is passed
            self._wandb_init["anonymous"] = "allow" if anonymous else None
        self._wandb_init.update(kwargs)
        self._project = self._wandb_init.get("project")
        self._save_dir = self._wandb_init.get("dir")
        self._name = self._wandb_init.get("name")
        self._id = self._wandb_init.get("id")

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The wandb Run (started on first use; an already running `wandb.run` is reused)."""
        if self._experiment is None:
            wandb = _wandb()
            if self._offline:
                os.environ["WANDB_MODE"] = "offline"
            if wandb.run is not None:
                rank_zero_warn(
                    "WandbLogger: a wandb run is already active in this process; this logger logs to it. Call"
                    " `wandb.finish()` before creating the logger to start a new run instead."
                )
                self._experiment = wandb.run
            else:
                self._experiment = wandb.init(**self._wandb_init)
                if getattr(self._experiment, "define_metric", None) is not None:
                    if self._wandb_init.get("sync_tensorboard"):
                        self._experiment.define_metric("*", step_metric="global_step")
                    else:
                        self._experiment.define_metric(STEP_KEY)
                        self._experiment.define_metric("*", step_metric=STEP_KEY, step_sync=True)
        return self._experiment

    def watch(self, model: Any, log: Optional[str] = "gradients", log_freq: int = 100, log_graph: bool = True) -> None:
        """Have wandb record the gradients (and parameters with log="all") of `model` every `log_freq` steps."""
        self.experiment.watch(model, log=log, log_freq=log_freq, log_graph=log_graph)

    @rank_zero_only
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace]) -> None:
        params = json_safe_params(sanitize_callable_params(convert_params(params)))
        self.experiment.config.update(params, allow_val_change=True)

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is not None and not self._wandb_init.get("sync_tensorboard"):
            self.experiment.log({**metrics, STEP_KEY: step})
        else:
            self.experiment.log(dict(metrics))

    @rank_zero_only
    def log_table(
        self,
        key: str,
        columns: Optional[list] = None,
        data: Optional[list] = None,
        dataframe: Any = None,
        step: Optional[int] = None,
    ) -> None:
        """Log a wandb.Table made from `columns` and `data` rows, or from a pandas `dataframe`."""
        self.log_metrics({key: _wandb().Table(columns=columns, data=data, dataframe=dataframe)}, step)

    @rank_zero_only
    def log_text(
        self,
        key: str,
        columns: Optional[list] = None,
        data: Optional[list] = None,
        dataframe: Any = None,
        step: Optional[int] = None,
    ) -> None:
        """Log text as a table (same arguments as `log_table`)."""
        self.log_table(key, columns, data, dataframe, step)

    def _log_media(self, kind: str, key: str, items: list, step: Optional[int], kwargs: Dict[str, list]) -> None:
        if not isinstance(items, list):
            raise TypeError(f"WandbLogger.log_{kind.lower()}({key!r}, ...): give a list, got {type(items).__name__}")
        for arg, values in kwargs.items():
            if len(values) != len(items):
                raise ValueError(
                    f"WandbLogger.log_{kind.lower()}({key!r}, ...): `{arg}` has {len(values)} items for"
                    f" {len(items)} {kind.lower()}s"
                )
        media = getattr(_wandb(), kind)
        per_item = [{arg: values[i] for arg, values in kwargs.items()} for i in range(len(items))]
        self.log_metrics({key: [media(item, **extra) for item, extra in zip(items, per_item)]}, step)

    @rank_zero_only
    def log_image(self, key: str, images: list, step: Optional[int] = None, **kwargs: list) -> None:
        """Log images (tensors, arrays, PIL images or paths); each kwarg is a list with one value per image."""
        self._log_media("Image", key, images, step, kwargs)

    @rank_zero_only
    def log_audio(self, key: str, audios: list, step: Optional[int] = None, **kwargs: list) -> None:
        """Log audio clips (arrays or paths); each kwarg is a list with one value per clip (e.g. sample_rate)."""
        self._log_media("Audio", key, audios, step, kwargs)

    @rank_zero_only
    def log_video(self, key: str, videos: list, step: Optional[int] = None, **kwargs: list) -> None:
        """Log videos (arrays or paths); each kwarg is a list with one value per video (e.g. fps)."""
        self._log_media("Video", key, videos, step, kwargs)

    @property
    def save_dir(self) -> Optional[str]:
        return self._save_dir

    @property
    def name(self) -> Optional[str]:
        """The project name (the run's display name is `logger.experiment.name`)."""
        return self._project

    @property
    def version(self) -> Optional[str]:
        """The run id: the active run's, else the one given to the constructor (no run is started to answer)."""
        return self._experiment.id if self._experiment else self._id

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        if self._log_model == "all" or (self._log_model is True and checkpoint_callback.save_top_k == -1):
            self._log_checkpoints(checkpoint_callback)
        elif self._log_model is True:
            self._checkpoint_callbacks[id(checkpoint_callback)] = checkpoint_callback

    @staticmethod
    @rank_zero_only
    def download_artifact(
        artifact: str,
        save_dir: Optional[Union[str, os.PathLike]] = None,
        artifact_type: Optional[str] = None,
        use_artifact: Optional[bool] = True,
    ) -> str:
        """Download `artifact` (through the active run when there is one and `use_artifact`); return its folder."""
        wandb = _wandb()
        if wandb.run is not None and use_artifact:
            found = wandb.run.use_artifact(artifact)
        else:
            found = wandb.Api().artifact(artifact, type=artifact_type)
        return found.download(root=None if save_dir is None else os.fspath(save_dir))

    def use_artifact(self, artifact: str, artifact_type: Optional[str] = None) -> Any:
        """Record that this run uses `artifact`; return the wandb Artifact."""
        return self.experiment.use_artifact(artifact, type=artifact_type)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        # The run stays open (trainer.test can keep logging to it); checkpoints kept for the end are logged now.
        if status != "success" or self._experiment is None:
            return
        for checkpoint_callback in self._checkpoint_callbacks.values():
            self._log_checkpoints(checkpoint_callback)

    def _log_checkpoints(self, checkpoint_callback: Any) -> None:
        wandb = _wandb()
        for mtime, path, score, _ in checkpoints_to_log(checkpoint_callback, self._logged_model_time):
            section = checkpoint_callback.__class__.__name__  # the class behind a weakref proxy
            metadata = checkpoint_metadata(checkpoint_callback, path, score, section)
            if not self._checkpoint_name:
                self._checkpoint_name = f"model-{self.experiment.id}"
            artifact = wandb.Artifact(name=self._checkpoint_name, type="model", metadata=metadata)
            artifact.add_file(path, name="model.ckpt", policy=self.add_file_policy)
            aliases = ["latest", "best"] if path == checkpoint_callback.best_model_path else ["latest"]
            self.experiment.log_artifact(artifact, aliases=aliases)
            self._logged_model_time[path] = mtime

    def __getstate__(self) -> Dict[str, Any]:
        # A pickled logger (spawned DDP workers) re-attaches to the same run id instead of carrying the live run.
        _ = self.experiment
        state = self.__dict__.copy()
        if self._experiment is not None:
            state["_id"] = getattr(self._experiment, "id", None)
            state["_wandb_init"] = {**self._wandb_init, "id": state["_id"]}
            state["_name"] = self._experiment.name
        state["_experiment"] = None
        return state
