"""Logger: the base class of experiment loggers, with Lightning's interface.

`rank_zero_experiment` makes `logger.experiment` a do-nothing object on ranks other than 0, so user code such as
`self.logger.experiment.add_image(...)` runs unchanged under DDP without writing from every process.
"""
import functools
import os
from abc import ABC, abstractmethod
from argparse import Namespace
from typing import Any, Callable, Dict, Optional, Union

from fastlight.utilities.rank_zero import rank_zero_only

from ._utils import next_version


def rank_zero_experiment(fn: Callable) -> Callable:
    """Decorator for an `experiment` property: the real object on global rank 0, a DummyExperiment elsewhere."""

    @functools.wraps(fn)
    def experiment(self: Any) -> Any:
        if rank_zero_only.rank > 0:
            return DummyExperiment()
        return fn(self)

    return experiment


class DummyExperiment:
    """Accepts any method call, indexing or item assignment and does nothing."""

    def nop(self, *args: Any, **kwargs: Any) -> None:
        pass

    def __getattr__(self, _: str) -> Callable:
        return self.nop

    def __getitem__(self, idx: Any) -> "DummyExperiment":
        return self

    def __setitem__(self, *args: Any, **kwargs: Any) -> None:
        pass


class Logger(ABC):
    """Base class for experiment loggers (Lightning's `pytorch_lightning.loggers.Logger` contract)."""

    @property
    @abstractmethod
    def name(self) -> Optional[str]:
        """The experiment name."""

    @property
    @abstractmethod
    def version(self) -> Optional[Union[int, str]]:
        """The experiment version."""

    @property
    def root_dir(self) -> Optional[str]:
        """Folder holding every version of this experiment, or None when nothing is saved locally."""
        return None

    @property
    def log_dir(self) -> Optional[str]:
        """Folder of the current version, or None when nothing is saved locally."""
        return None

    @property
    def save_dir(self) -> Optional[str]:
        """Root folder the logs are saved under, or None when nothing is saved locally."""
        return None

    @property
    def group_separator(self) -> str:
        return "/"

    @abstractmethod
    def log_metrics(self, metrics: Dict[str, float], step: Optional[int] = None) -> None:
        """Record `metrics` (name -> number or 0-dim tensor) at `step`."""

    @abstractmethod
    def log_hyperparams(self, params: Union[Dict[str, Any], Namespace], *args: Any, **kwargs: Any) -> None:
        """Record hyperparameters."""

    def log_graph(self, model: Any, input_array: Any = None) -> None:
        pass

    def save(self) -> None:
        pass

    def finalize(self, status: str) -> None:
        self.save()

    def after_save_checkpoint(self, checkpoint_callback: Any) -> None:
        """Called by ModelCheckpoint after it wrote a checkpoint."""


class DummyLogger(Logger):
    """A logger that accepts every call and records nothing (used when logging is switched off for a run)."""

    def __init__(self) -> None:
        self._experiment = DummyExperiment()

    @property
    def experiment(self) -> DummyExperiment:
        return self._experiment

    def log_metrics(self, *args: Any, **kwargs: Any) -> None:
        pass

    def log_hyperparams(self, *args: Any, **kwargs: Any) -> None:
        pass

    @property
    def name(self) -> str:
        return ""

    @property
    def version(self) -> str:
        return ""

    def __getitem__(self, idx: int) -> "DummyLogger":
        return self

    def __getattr__(self, name: str) -> Callable:
        def method(*args: Any, **kwargs: Any) -> None:
            return None

        return method


class _VersionedFolderLogger(Logger):
    """A logger that writes under <save_dir>/<name>/<version>: version_N (the next free N unless given) or the string
    given as version. Shared by CSVLogger and TensorBoardLogger."""

    def __init__(self, save_dir: Union[str, os.PathLike], name: Optional[str], version: Optional[Union[int, str]]) -> None:
        self._save_dir = os.fspath(save_dir)
        self._name = name or ""
        self._version = version

    @property
    def name(self) -> str:
        return self._name

    @property
    def version(self) -> Union[int, str]:
        if self._version is None:
            self._version = next_version(self.root_dir)
        return self._version

    @property
    def save_dir(self) -> str:
        return self._save_dir

    @property
    def root_dir(self) -> str:
        return os.path.join(self._save_dir, self.name)

    @property
    def log_dir(self) -> str:
        version = self.version if isinstance(self.version, str) else f"version_{self.version}"
        return os.path.join(self.root_dir, version)
