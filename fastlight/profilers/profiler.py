"""The profiler interface of Lightning 2.x: `start`/`stop`/`profile(action)`, a report at the end of each stage.

`Trainer(profiler=None)` gets a PassThroughProfiler: `self.trainer.profiler.profile(...)` in user code works and
costs a context manager, and the Trainer adds no timing of its own to the loop (`profiling` is False).
"""
import logging
import os
import re
from contextlib import contextmanager
from typing import Any, Callable, Iterator, Optional, TextIO

log = logging.getLogger("lightning.pytorch.profilers.profiler")  # Lightning's name, as rank_zero.module_logger gives
# (spelled out: the profilers layer does not import utilities)


class Profiler:
    """Base class: subclasses implement start/stop (and summary for a report).

    dirpath/filename: write the report to `{dirpath}/{stage}-{filename}.txt` (dirpath defaults to the
    trainer's log_dir) instead of logging it (logger "fastlight.profilers", INFO, rank 0 only).
    """

    profiling = True  # the Trainer times its hooks and loop actions only for a profiler that records them

    def __init__(self, dirpath: Optional[str] = None, filename: Optional[str] = None) -> None:
        self.dirpath = None if dirpath is None else os.fspath(dirpath)
        self.filename = filename
        self._stage: Optional[str] = None
        self._local_rank: Optional[int] = None
        self._output_file: Optional[TextIO] = None

    def start(self, action_name: str) -> None:
        raise NotImplementedError(f"{type(self).__name__}.start is not implemented")

    def stop(self, action_name: str) -> None:
        raise NotImplementedError(f"{type(self).__name__}.stop is not implemented")

    def summary(self) -> str:
        return ""

    @contextmanager
    def profile(self, action_name: str) -> Iterator[str]:
        self.start(action_name)
        try:
            yield action_name
        finally:
            self.stop(action_name)

    def wrap(self, action_name: str, fn: Callable) -> Callable:
        """`fn` timed under `action_name` on every call (what the Trainer uses for hooks and steps)."""
        start, stop = self.start, self.stop

        def timed(*args: Any, **kwargs: Any) -> Any:
            start(action_name)
            try:
                return fn(*args, **kwargs)
            finally:
                stop(action_name)

        return timed

    def setup(self, stage: str, local_rank: Optional[int] = None, log_dir: Optional[str] = None) -> None:
        self._stage = stage
        self._local_rank = local_rank
        self.dirpath = self.dirpath or log_dir

    def describe(self) -> None:
        """Write (or log) the report of the stage that just ended."""
        summary = self.summary()
        if summary:
            if self.filename:
                path = self._report_path()
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                with open(path, "a") as f:
                    f.write(summary)
            elif self._local_rank in (None, 0):
                log.info(summary)
        self.teardown(self._stage)

    def _report_path(self, action_name: Optional[str] = None, extension: str = ".txt") -> str:
        parts = [p for p in (self._stage, self.filename) if p]
        if self._local_rank is not None:
            parts.append(str(self._local_rank))
        if action_name is not None:
            parts.append(action_name)
        base = re.sub(r"_+", "_", re.sub(r"[\\/:*?\"<>|\n\r\t]", "_", "-".join(parts))).strip() or "profile"
        return os.path.join(self.dirpath or ".", base + extension)

    def teardown(self, stage: Optional[str]) -> None:
        pass

    @property
    def local_rank(self) -> int:
        return self._local_rank or 0


class PassThroughProfiler(Profiler):
    """Records nothing: the default, so that `trainer.profiler.profile(...)` always works."""

    profiling = False

    def start(self, action_name: str) -> None:
        pass

    def stop(self, action_name: str) -> None:
        pass
