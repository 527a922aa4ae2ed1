"""CSVLogger: metrics.csv and hparams.yaml under <save_dir>/<name>/version_N, in Lightning's layout and format."""
import csv
import os
from argparse import Namespace
from typing import Any, Dict, List, Optional, Union

from torch import Tensor

from fastlight.core.saving import save_hparams_to_yaml
from fastlight.utilities._fs import filesystem
from fastlight.utilities.rank_zero import rank_zero_only, rank_zero_warn

from ._utils import add_prefix, convert_params
from .logger import _VersionedFolderLogger, rank_zero_experiment


def tensors_to_numbers(metrics: Dict[str, Any]) -> Dict[str, Any]:
    """Replace tensor values by python numbers with one host transfer per (device, dtype) group, not one per value."""
    groups: Dict[Any, List[str]] = {}
    out = dict(metrics)
    for key, value in metrics.items():
        if isinstance(value, Tensor):
            if value.numel() != 1:
                raise ValueError(f"Logged metric {key!r} must be a scalar, got a tensor of shape {tuple(value.shape)}")
            groups.setdefault((value.device, value.dtype), []).append(key)
    for keys in groups.values():
        if len(keys) == 1:
            out[keys[0]] = metrics[keys[0]].item()  # host sync: the writer needs a number
        else:
            import torch

            values = torch.stack([metrics[k].detach().reshape(()) for k in keys]).tolist()  # one host sync
            out.update(zip(keys, values))
    return out


class ExperimentWriter:
    """Buffers metric rows and writes them to metrics.csv; hparams go to hparams.yaml.

    The header is the sorted union of every key seen so far; when a save brings new keys the file is rewritten with
    the wider header (older rows get empty cells), as Lightning's writer does.
    """

    NAME_METRICS_FILE = "metrics.csv"
    NAME_HPARAMS_FILE = "hparams.yaml"

    def __init__(self, log_dir: str) -> None:
        self.metrics: List[Dict[str, Any]] = []
        self.metrics_keys: List[str] = []
        self.hparams: Dict[str, Any] = {}
        self.log_dir = log_dir
        self._fs = fs = filesystem(log_dir)  # a local folder, or a URL through fsspec
        self.metrics_file_path = os.path.join(log_dir, self.NAME_METRICS_FILE)
        if fs.isdir(log_dir) and fs.listdir(log_dir):
            rank_zero_warn(
                f"Experiment logs directory {log_dir} exists and is not empty."
                " Previous log files in this directory will be deleted when the new ones are saved!"
            )
            if fs.isfile(self.metrics_file_path):
                fs.rm(self.metrics_file_path)
        fs.makedirs(log_dir, exist_ok=True)

    def log_metrics(self, metrics_dict: Dict[str, Any], step: Optional[int] = None) -> None:
        if step is None:
            step = len(self.metrics)
        row = tensors_to_numbers(metrics_dict)
        row["step"] = step
        self.metrics.append(row)

    def log_hparams(self, params: Dict[str, Any]) -> None:
        self.hparams.update(params)
        save_hparams_to_yaml(os.path.join(self.log_dir, self.NAME_HPARAMS_FILE), self.hparams)

    def save(self) -> None:
        if not self.metrics:
            return
        seen = set(self.metrics_keys)
        new_keys = set().union(*self.metrics) - seen
        file_exists = self._fs.isfile(self.metrics_file_path)
        if new_keys:
            self.metrics_keys = sorted(seen | new_keys)
            if file_exists:
                self._rewrite_with_header(self.metrics_keys)
        with self._fs.open(self.metrics_file_path, "a" if file_exists else "w", newline="") as fp:
            writer = csv.DictWriter(fp, fieldnames=self.metrics_keys)
            if not file_exists:
                writer.writeheader()
            writer.writerows(self.metrics)
        self.metrics = []

    def _rewrite_with_header(self, fieldnames: List[str]) -> None:
        with self._fs.open(self.metrics_file_path, "r", newline="") as fp:
            rows = list(csv.DictReader(fp))
        with self._fs.open(self.metrics_file_path, "w", newline="") as fp:
            writer = csv.DictWriter(fp, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)


class CSVLogger(_VersionedFolderLogger):
    """Log metrics to <save_dir>/<name>/version_N/metrics.csv and hyperparameters to hparams.yaml.

    Args:
        save_dir: root folder.
        name: experiment name (a subfolder); None or "" puts the versions directly under save_dir.
        version: int (folder version_N) or str (folder name); None picks the next free version_N.
        prefix: put before every metric key, joined with "-".
        flush_logs_every_n_steps: write the buffered rows to disk every this many steps (and at finalize).
    """

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        save_dir: Union[str, os.PathLike],
        name: Optional[str] = "lightning_logs",
        version: Optional[Union[int, str]] = None,
        prefix: str = "",
        flush_logs_every_n_steps: int = 100,
    ) -> None:
        if not isinstance(flush_logs_every_n_steps, int) or flush_logs_every_n_steps < 1:
            raise ValueError(f"CSVLogger(flush_logs_every_n_steps={flush_logs_every_n_steps!r}) must be an int >= 1")
        super().__init__(save_dir, name, version)
        self._prefix = prefix
        self._flush_logs_every_n_steps = flush_logs_every_n_steps
        self._experiment: Optional[ExperimentWriter] = None

    @property
    @rank_zero_experiment
    def experiment(self) -> ExperimentWriter:
        if self._experiment is None:
            filesystem(self.root_dir).makedirs(self.root_dir, exist_ok=True)
            self._experiment = ExperimentWriter(self.log_dir)
        return self._experiment

    @rank_zero_only
    def log_hyperparams(self, params: Optional[Union[Dict[str, Any], Namespace]] = None) -> None:
        self.experiment.log_hparams(convert_params(params))

    @rank_zero_only
    def log_metrics(self, metrics: Dict[str, Union[Tensor, float]], step: Optional[int] = None) -> None:
        metrics = add_prefix(metrics, self._prefix, self.LOGGER_JOIN_CHAR)
        if step is None:
            step = len(self.experiment.metrics)
        self.experiment.log_metrics(metrics, step)
        if (step + 1) % self._flush_logs_every_n_steps == 0:
            self.save()

    @rank_zero_only
    def save(self) -> None:
        self.experiment.save()

    @rank_zero_only
    def finalize(self, status: str) -> None:
        if self._experiment is None:
            return  # nothing was logged from this process
        self.save()
