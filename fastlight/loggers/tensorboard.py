"""TensorBoardLogger: event files written by torch.utils.tensorboard.SummaryWriter, Lightning's folder layout.

The tensorboard package is imported only when the first event is written, so `import fastlight.loggers` stays light.
"""
import os
from argparse import Namespace
from typing import Any, Dict, Mapping, Optional, Union

from torch import Tensor

from fastlight.core.saving import save_hparams_to_yaml
from fastlight.utilities.rank_zero import rank_zero_only, rank_zero_warn

from ._utils import add_prefix, convert_params, flatten_dict, sanitize_params
from .logger import _VersionedFolderLogger, rank_zero_experiment


def _tensorboard_available() -> bool:
    import importlib.util
    import sys

    if "tensorboard" in sys.modules:
        return sys.modules["tensorboard"] is not None  # None: imports of it are blocked
    try:
        return importlib.util.find_spec("tensorboard") is not None
    except (ImportError, ValueError):
        return False


class TensorBoardLogger(_VersionedFolderLogger):
    """Log to <save_dir>/<name>/version_N[/sub_dir] as TensorBoard event files, plus hparams.yaml.

    Args:
        save_dir: root folder.
        name: experiment name; None or "" puts the versions directly under save_dir.
        version: int (folder version_N) or str (folder name); None picks the next free version_N.
        log_graph: add the model graph (traced from `example_input_array`) when `log_graph` is called.
        default_hp_metric: log a placeholder "hp_metric" = -1 with the hyperparameters so TensorBoard's HPARAMS tab
            shows them.
        prefix: put before every metric key, joined with "-".
        sub_dir: extra folder under the version folder.
        **kwargs: passed to SummaryWriter (e.g. max_queue, flush_secs).
    """

    NAME_HPARAMS_FILE = "hparams.yaml"
    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: Union[str, os.PathLike],
        name: Optional[str] = "lightning_logs",
        version: Optional[Union[int, str]] = None,
        log_graph: bool = False,
        default_hp_metric: bool = True,
        prefix: str = "",
        sub_dir: Optional[Union[str, os.PathLike]] = None,
        **kwargs: Any,
    ) -> None:
        if not _tensorboard_available():
            raise ModuleNotFoundError(
                "TensorBoardLogger needs the `tensorboard` package: `pip install tensorboard` (or use CSVLogger)."
            )
        super().__init__(save_dir, name, version)
        self._sub_dir = None if sub_dir is None else os.fspath(sub_dir)
        self._log_graph = log_graph
        self._default_hp_metric = default_hp_metric
        self._prefix = prefix
        self._kwargs = kwargs
        self._experiment: Any = None
        self.hparams: Dict[str, Any] = {}

    @property
    def sub_dir(self) -> Optional[str]:
        return self._sub_dir

    @property
    def log_dir(self) -> str:
        log_dir = super().log_dir
        if isinstance(self._sub_dir, str):
            log_dir = os.path.join(log_dir, self._sub_dir)
        return os.path.expanduser(os.path.expandvars(log_dir))

    @property
    @rank_zero_experiment
    def experiment(self) -> Any:
        """The torch.utils.tensorboard.SummaryWriter (created on first use)."""
        if self._experiment is None:
            from torch.utils.tensorboard import SummaryWriter

            if self.root_dir:
                os.makedirs(self.root_dir, exist_ok=True)
            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
        return self._experiment

    @rank_zero_only
    def log_metrics(self, metrics: Mapping[str, Any], step: Optional[int] = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        writer = self.experiment
        for key, value in metrics.items():
            if isinstance(value, Tensor):
                value = value.item()  # host sync: the event file needs a number
            if isinstance(value, dict):
                writer.add_scalars(key, value, step)
                continue
            try:
                writer.add_scalar(key, value, step)
            except Exception as err:
                raise ValueError(
                    f"TensorBoardLogger cannot log {key!r}={value!r}: log a number, a scalar tensor or a dict of them."
                ) from err

    @rank_zero_only
    def log_hyperparams(
        self,
        params: Union[Dict[str, Any], Namespace],
        metrics: Optional[Union[Dict[str, Any], float]] = None,
        step: Optional[int] = None,
    ) -> None:
        """Keep `params` for hparams.yaml and write them as a TensorBoard hparams summary with `metrics`."""
        params = convert_params(params)
        self.hparams.update(params)
        flat = sanitize_params(flatten_dict(params))
        flat = {k: str(v) if hasattr(v, "ndim") and v.ndim > 1 else v for k, v in flat.items()}
        if metrics is None:
            metrics = {"hp_metric": -1} if self._default_hp_metric else None
        elif not isinstance(metrics, dict):
            metrics = {"hp_metric": metrics}
        if metrics:
            self.log_metrics(metrics, step)
            from torch.utils.tensorboard.summary import hparams

            experiment, session_start, session_end = hparams(flat, metrics)
            file_writer = self.experiment._get_file_writer()
            for summary in (experiment, session_start, session_end):
                file_writer.add_summary(summary, step)

    @rank_zero_only
    def log_graph(self, model: Any, input_array: Any = None) -> None:
        if not self._log_graph:
            return
        if input_array is None:
            input_array = getattr(model, "example_input_array", None)
        if input_array is None:
            rank_zero_warn(
                "Could not log computational graph to TensorBoard: The `model.example_input_array` attribute"
                " is not set or `input_array` was not given."
            )
            return
        if not isinstance(input_array, (Tensor, tuple)):
            rank_zero_warn(
                "Could not log computational graph to TensorBoard: the input has type"
                f" {type(input_array).__name__}, which can't be traced by TensorBoard: give a tensor or a tuple of"
                " `forward()`'s positional arguments."
            )
            return
        # Move the example input where the model is, through the module's own transfer hooks when it has them.
        before = getattr(model, "on_before_batch_transfer", None)
        transfer = getattr(model, "transfer_batch_to_device", None)
        after = getattr(model, "on_after_batch_transfer", None)
        device = getattr(model, "device", None)
        if callable(before) and callable(transfer) and callable(after) and device is not None:
            input_array = after(transfer(before(input_array, 0), device, 0), 0)
        self.experiment.add_graph(model, input_array)

    @rank_zero_only
    def save(self) -> None:
        self.experiment.flush()  # creates the writer and folder, as Lightning's save does
        hparams_file = os.path.join(self.log_dir, self.NAME_HPARAMS_FILE)
        # Written once per version folder, and only once the folder exists (i.e. something was logged).
        if os.path.isdir(self.log_dir) and not os.path.isfile(hparams_file):
            save_hparams_to_yaml(hparams_file, self.hparams)

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is not None:
            self._experiment.flush()
            self._experiment.close()
        if status == "success":
            self.save()

    def __getstate__(self) -> Dict[str, Any]:
        state = self.__dict__.copy()
        state["_experiment"] = None  # a SummaryWriter holds threads and open files
        return state
