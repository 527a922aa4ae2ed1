"""The launcher interface (Lightning's `_Launcher`): how a strategy starts the processes of a run."""
import os
from abc import ABC, abstractmethod
from typing import Any, Callable

import torch


class Launcher(ABC):
    """Starts the other processes of a run (if any) and calls the run function in this one.

    The Trainer calls `launch(function, *args, trainer=trainer)` once per fit/validate/test/predict call, and `kill`
    when this process fails or is interrupted and the other ranks would otherwise wait for it in a collective.
    """

    @property
    @abstractmethod
    def is_interactive_compatible(self) -> bool:
        """Whether it can run in a notebook or an interactive interpreter."""

    @abstractmethod
    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        """Run `function(*args, **kwargs)` in every process of the run and return its value here."""

    @abstractmethod
    def kill(self, signum: int) -> None:
        """Send `signum` to the processes this launcher started."""


_Launcher = Launcher  # Lightning's name


def set_num_threads_if_needed(num_processes: int) -> None:
    """N processes on one host share its cores: give each its share unless the user chose (OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" in os.environ or num_processes <= 1:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // num_processes)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)
