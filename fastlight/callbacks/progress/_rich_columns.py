"""The rich pieces of RichProgressBar (imported on first use: rich is optional). They are exposed under Lightning's names
in `fastlight.callbacks.progress.rich_progress`, which is where user code and the bar look them up."""
import math
from datetime import timedelta
from typing import Any, Dict, Iterator, Optional, Union

from rich.console import RenderableType
from rich.live import _RefreshThread as _RichRefreshThread
from rich.progress import BarColumn, Progress, ProgressColumn, Task, TaskID, TextColumn
from rich.progress_bar import ProgressBar as _RichBar
from rich.style import Style
from rich.text import Text

from fastlight.callbacks import _trainer_access as access


class CustomBarColumn(BarColumn):
    """rich's bar column that also draws a task of unknown (infinite) length: as a pulse."""

    def render(self, task: "Task") -> _RichBar:
        total = task.total if task.total is not None else float("inf")
        remaining = task.remaining if task.remaining is not None else float("inf")
        return _RichBar(
            total=max(0, total),
            completed=max(0, task.completed),
            width=None if self.bar_width is None else max(1, self.bar_width),
            pulse=not task.started or not math.isfinite(remaining),
            animation_time=task.get_time(),
            style=self.style,
            complete_style=self.complete_style,
            finished_style=self.finished_style,
            pulse_style=self.pulse_style,
        )


class CustomInfiniteTask(Task):
    """A task without a length (an IterableDataset): no time remaining to estimate."""

    @property
    def time_remaining(self) -> Optional[float]:
        return None


class _RefreshThread(_RichRefreshThread):
    """Redraws at most `refresh_per_second` times a second, and only after the bar asked for it (`refresh_cond`), so
    a batch only sets a flag and the drawing happens off the training thread."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.refresh_cond = False
        super().__init__(*args, **kwargs)

    def run(self) -> None:
        interval = 1 / self.refresh_per_second
        while not self.done.wait(interval):
            if self.refresh_cond:
                self.refresh_cond = False
                with self.live._lock:
                    if not self.done.is_set():
                        self.live.refresh()


class CustomProgress(Progress):
    """rich's Progress with the on-request refresh thread above and tasks of infinite length."""

    def start(self) -> None:
        live = self.live
        if live.auto_refresh:  # start our thread instead of rich's
            live._refresh_thread = _RefreshThread(live, live.refresh_per_second)
            live.auto_refresh = False
        super().start()
        if live._refresh_thread is not None:
            live.auto_refresh = True
            live._refresh_thread.start()

    def stop(self) -> None:
        thread = self.live._refresh_thread
        super().stop()
        if thread is not None:
            thread.stop()
            thread.join()

    def soft_refresh(self) -> None:
        """Asks the refresh thread to redraw at its next tick (a flag: nothing is drawn on this thread)."""
        thread = self.live._refresh_thread
        if self.live.auto_refresh and isinstance(thread, _RefreshThread):
            thread.refresh_cond = True

    def add_task(self, description: str, start: bool = True, total: Optional[float] = 100.0, completed: int = 0,
                 visible: bool = True, **fields: Any) -> TaskID:
        if total is not None and not math.isfinite(total):
            task = CustomInfiniteTask(self._task_index, description, total, completed, visible=visible, fields=fields,
                                      _get_time=self.get_time, _lock=self._lock)
            return self.add_custom_task(task, start)
        return super().add_task(description, start, total, completed, visible, **fields)

    def add_custom_task(self, task: CustomInfiniteTask, start: bool = True) -> TaskID:
        with self._lock:
            task_id = self._task_index
            self._tasks[task_id] = task
            if start:
                self.start_task(task_id)
            self._task_index = TaskID(int(task_id) + 1)
        self.refresh()
        return task_id


class CustomTimeColumn(ProgressColumn):
    """"elapsed • remaining" as h:mm:ss, redrawn at most twice a second."""

    max_refresh = 0.5

    def __init__(self, style: Union[str, Style]) -> None:
        self.style = style
        super().__init__()

    def render(self, task: "Task") -> Text:
        elapsed = task.finished_time if task.finished else task.elapsed
        remaining = task.time_remaining

        def fmt(seconds: Optional[float]) -> str:
            return "-:--:--" if seconds is None else str(timedelta(seconds=int(seconds)))

        return Text(f"{fmt(elapsed)} • {fmt(remaining)}", style=self.style)


class BatchesProcessedColumn(ProgressColumn):
    """"done/total" batches ("--" for an infinite total)."""

    def __init__(self, style: Union[str, Style]) -> None:
        self.style = style
        super().__init__()

    def render(self, task: "Task") -> RenderableType:
        total = "--" if task.total == float("inf") else task.total
        return Text(f"{int(task.completed)}/{total}", style=self.style)


class ProcessingSpeedColumn(ProgressColumn):
    """Batches per second."""

    def __init__(self, style: Union[str, Style]) -> None:
        self.style = style
        super().__init__()

    def render(self, task: "Task") -> RenderableType:
        speed = "0.00" if task.speed is None else f"{task.speed:>.2f}"
        return Text(f"{speed}it/s", style=self.style)


class MetricsTextColumn(ProgressColumn):
    """The metrics, shown on the training bar of a fit only. The bar hands them over with `update` on the training
    thread; rendering (on rich's refresh thread) only formats them. With `leave=True` a finished epoch's bar keeps the
    text it had."""

    def __init__(self, trainer: Any, style: Union[str, Style], text_delimiter: str, metrics_format: str,
                 progress_bar: Any = None) -> None:
        self._trainer = trainer
        self._progress_bar = progress_bar
        self._tasks: Dict[Union[int, TaskID], Any] = {}
        self._current_task_id: Union[int, TaskID] = 0
        self._metrics: Dict[Any, Any] = {}
        self._style = style
        self._text_delimiter = text_delimiter
        self._metrics_format = metrics_format
        super().__init__()

    def update(self, metrics: Dict[Any, Any]) -> None:
        self._metrics = metrics

    def _bar(self) -> Any:
        return self._progress_bar if self._progress_bar is not None else self._trainer.progress_bar_callback

    def render(self, task: "Task") -> Text:
        trainer = self._trainer
        bar = self._bar()
        if not access.is_fitting(trainer) or trainer.sanity_checking or getattr(bar, "train_progress_bar_id", None) != task.id:
            return Text()
        if trainer.training and task.id not in self._tasks:
            # a new epoch's bar: the previous one keeps the text last drawn for it
            self._tasks[task.id] = "None"
            if self._renderable_cache and self._current_task_id in self._renderable_cache:
                self._tasks[self._current_task_id] = self._renderable_cache[self._current_task_id][1]
            self._current_task_id = task.id
        if trainer.training and task.id != self._current_task_id:
            return self._tasks[task.id]
        return Text(self._text_delimiter.join(self._generate_metrics_texts()), justify="left", style=self._style)

    def _generate_metrics_texts(self) -> Iterator[str]:
        for name, value in self._metrics.items():
            if not isinstance(value, str):
                try:
                    value = f"{value:{self._metrics_format}}"
                except (TypeError, ValueError):
                    value = str(value)
            yield f"{name}: {value}"


# the names rich_progress exposes from here (Lightning's module has them at its top level)
EXPORTS = {
    "CustomBarColumn": CustomBarColumn,
    "CustomInfiniteTask": CustomInfiniteTask,
    "CustomProgress": CustomProgress,
    "CustomTimeColumn": CustomTimeColumn,
    "BatchesProcessedColumn": BatchesProcessedColumn,
    "ProcessingSpeedColumn": ProcessingSpeedColumn,
    "MetricsTextColumn": MetricsTextColumn,
    "Progress": Progress,
    "ProgressColumn": ProgressColumn,
    "BarColumn": BarColumn,
    "TextColumn": TextColumn,
    "Task": Task,
    "TaskID": TaskID,
    "Style": Style,
    "Text": Text,
}
