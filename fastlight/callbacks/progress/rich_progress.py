"""RichProgressBar (`lightning.pytorch.callbacks.progress.rich_progress`): the progress bar drawn with rich.

rich is optional and imported when a bar is first drawn (or when one of its names below is first read): the column
classes (`CustomProgress`, `CustomBarColumn`, `BatchesProcessedColumn`, `CustomTimeColumn`, `ProcessingSpeedColumn`,
`MetricsTextColumn`, ...) and rich's own `Progress` are attributes of this module, looked up here each time a bar is
built, so a subclass or a patch put here is used.

Drawing happens on rich's refresh thread, at most `refresh_rate` times a second; a batch only updates the task and
hands the metrics to the metrics column. Lightning's bar reads trainer.progress_bar_metrics (a host sync when metrics
are logged with prog_bar=True) every batch; this one reads them on a batch only when the column can show them: at
most `refresh_rate` times a second, and always on an epoch's first and last batch (and at epoch and validation ends,
as Lightning's).
"""
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Dict, List, Optional, Union

from fastlight.callbacks import _trainer_access as access
from fastlight.utilities.imports import _IS_INTERACTIVE, _RICH_AVAILABLE

from .progress_bar import _RefreshRateProgressBar

if TYPE_CHECKING:  # at run time _load_rich() puts these here
    from ._rich_columns import (BarColumn, BatchesProcessedColumn, CustomBarColumn, CustomInfiniteTask, CustomProgress,
                                CustomTimeColumn, MetricsTextColumn, ProcessingSpeedColumn, Progress, ProgressColumn,
                                Style, Task, TaskID, Text, TextColumn)

__all__ = ["RichProgressBar", "RichProgressBarTheme"]

_RICH_NAMES = (
    "CustomBarColumn", "CustomInfiniteTask", "CustomProgress", "CustomTimeColumn", "BatchesProcessedColumn",
    "ProcessingSpeedColumn", "MetricsTextColumn", "Progress", "ProgressColumn", "BarColumn", "TextColumn", "Task",
    "TaskID", "Style", "Text",
)


def _load_rich() -> None:
    """Puts the rich pieces into this module's namespace (those not already set there, e.g. by a patch)."""
    from . import _rich_columns

    namespace = globals()
    for name in _RICH_NAMES:
        namespace.setdefault(name, _rich_columns.EXPORTS[name])


def __getattr__(name: str) -> Any:
    if name in _RICH_NAMES:
        if not _RICH_AVAILABLE:
            raise AttributeError(f"{__name__}.{name} needs the `rich` package: `pip install rich`")
        _load_rich()
        return globals()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@dataclass
class RichProgressBarTheme:
    """Styles of the bar's parts (rich style strings or `rich.style.Style`), the text between metrics and the format
    spec of metric values."""

    description: Union[str, Any] = ""
    progress_bar: Union[str, Any] = "#6206E0"
    progress_bar_finished: Union[str, Any] = "#6206E0"
    progress_bar_pulse: Union[str, Any] = "#6206E0"
    batch_progress: Union[str, Any] = ""
    time: Union[str, Any] = "dim"
    processing_speed: Union[str, Any] = "dim underline"
    metrics: Union[str, Any] = "italic"
    metrics_text_delimiter: str = " "
    metrics_format: str = ".3f"


class RichProgressBar(_RefreshRateProgressBar):
    """Args:
        refresh_rate: redraws per second (the refresh thread's rate); 0 hides the bars.
        leave: keep each finished epoch's bar on screen.
        theme: a RichProgressBarTheme.
        console_kwargs: passed to rich's `reconfigure` (the global console the bar draws on).

    Override `configure_columns` for other columns (the metrics column is always added last).
    """

    def __init__(self, refresh_rate: int = 100, leave: bool = False, theme: Optional[RichProgressBarTheme] = None,
                 console_kwargs: Optional[Dict[str, Any]] = None) -> None:
        if not _RICH_AVAILABLE:
            raise ModuleNotFoundError(
                "`RichProgressBar` requires `rich` >= 10.2.2. Install it by running `pip install -U rich`."
            )
        super().__init__(refresh_rate)
        self._leave = leave
        self._console: Any = None
        self._console_kwargs = console_kwargs or {}
        self.progress: Any = None
        self.train_progress_bar_id: Optional[int] = None
        self.val_sanity_progress_bar_id: Optional[int] = None
        self.val_progress_bar_id: Optional[int] = None
        self.test_progress_bar_id: Optional[int] = None
        self.predict_progress_bar_id: Optional[int] = None
        self._metric_component: Any = None
        self._metrics_read_at = -math.inf  # when a training batch last read the metrics
        self._metrics_due = True  # whether _update_metrics reads them now (only a training batch may skip)
        self._progress_stopped = False
        self.theme = theme if theme is not None else RichProgressBarTheme()

    def __getstate__(self) -> dict:
        state = dict(vars(self))
        # the console, the live display and its threads hold locks, which do not pickle
        state["progress"] = state["_console"] = state["_metric_component"] = None
        return state

    # -- the tasks of the bars ---------------------------------------------------------------------------------------
    def _task(self, task_id: Optional[int], what: str) -> Any:
        if self.progress is None or task_id is None:
            raise TypeError(f"The `{self.__class__.__name__}` {what} bar has not been created yet.")
        return self.progress.tasks[task_id]

    @property
    def train_progress_bar(self) -> Any:
        return self._task(self.train_progress_bar_id, "training")

    @property
    def val_sanity_check_bar(self) -> Any:
        return self._task(self.val_sanity_progress_bar_id, "sanity check")

    @property
    def val_progress_bar(self) -> Any:
        return self._task(self.val_progress_bar_id, "validation")

    @property
    def test_progress_bar(self) -> Any:
        return self._task(self.test_progress_bar_id, "test")

    def _reset_progress_bar_ids(self) -> None:
        self.train_progress_bar_id = None
        self.val_sanity_progress_bar_id = None
        self.val_progress_bar_id = None
        self.test_progress_bar_id = None
        self.predict_progress_bar_id = None

    # -- the live display --------------------------------------------------------------------------------------------
    def configure_columns(self, trainer: Any) -> List[Any]:
        """The columns before the metrics: description, bar, batches done, times, speed."""
        _load_rich()
        theme = self.theme
        return [
            TextColumn("[progress.description]{task.description}"),
            CustomBarColumn(complete_style=theme.progress_bar, finished_style=theme.progress_bar_finished,
                            pulse_style=theme.progress_bar_pulse),
            BatchesProcessedColumn(style=theme.batch_progress),
            CustomTimeColumn(style=theme.time),
            ProcessingSpeedColumn(style=theme.processing_speed),
        ]

    def _init_progress(self, trainer: Any) -> None:
        if not self.is_enabled or (self.progress is not None and not self._progress_stopped):
            return
        _load_rich()
        from rich import get_console, reconfigure

        self._reset_progress_bar_ids()
        reconfigure(**self._console_kwargs)
        self._console = get_console()
        # a live display an earlier run left on the console (stopped by an exception) would hide ours
        if hasattr(self._console, "_live_stack"):  # rich >= 14.1 stacks live displays
            while self._console._live_stack:
                self._console.clear_live()
        else:
            self._console.clear_live()
        theme = self.theme
        self._metric_component = MetricsTextColumn(trainer, theme.metrics, theme.metrics_text_delimiter,
                                                   theme.metrics_format, progress_bar=self)
        self.progress = CustomProgress(
            *self.configure_columns(trainer),
            self._metric_component,
            auto_refresh=True,
            refresh_per_second=self.refresh_rate if self.is_enabled else 1,
            disable=self.is_disabled,
            console=self._console,
        )
        self.progress.start()
        self._progress_stopped = False

    def _stop_progress(self) -> None:
        if self.progress is not None and not self._progress_stopped:
            self.progress.stop()
            self._progress_stopped = True  # the next stage starts a new live display

    def refresh(self, hard: bool = False) -> None:
        """Redraws now (`hard`, or in an interactive session), else asks the refresh thread to redraw."""
        if self.progress:
            if hard or _IS_INTERACTIVE:
                self.progress.refresh()
            else:
                self.progress.soft_refresh()

    def _add_task(self, total_batches: Union[int, float], description: str, visible: bool = True) -> Any:
        if self.theme.description:
            description = f"[{self.theme.description}]{description}"
        return self.progress.add_task(description, total=total_batches, visible=visible)

    def _hide(self, task_id: Optional[int]) -> None:
        if task_id is not None and self.progress is not None:
            self.progress.update(task_id, advance=0, visible=False)

    def _update(self, progress_bar_id: Optional[int], current: int, visible: bool = True, hard: bool = False) -> None:
        if self.progress is not None and self.is_enabled and progress_bar_id is not None:
            self.progress.update(progress_bar_id, completed=current, visible=visible)
            self.refresh(hard=hard)

    def _get_train_description(self, current_epoch: int) -> str:
        """"Epoch 3/9", padded to the width of "Validation" so the bars do not shift."""
        description = f"Epoch {current_epoch}"
        if self.trainer.max_epochs is not None:
            description += f"/{self.trainer.max_epochs - 1}"
        width = len(self.validation_description)
        return description.ljust(width)

    def _initialize_train_progress_bar_id(self) -> None:
        self.train_progress_bar_id = self._add_task(self.total_train_batches, self._get_train_description(self.trainer.current_epoch))

    def _update_metrics(self, trainer: Any, pl_module: Any) -> None:
        if not self.is_enabled or self._metric_component is None or not self._metrics_due:
            return
        self._metric_component.update(self.get_metrics(trainer, pl_module))  # host sync: the metrics as numbers

    # -- stages start ------------------------------------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress(trainer)

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress(trainer)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress(trainer)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress(trainer)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress(trainer)

    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        self._hide(self.val_sanity_progress_bar_id)
        self.refresh()

    # -- training ----------------------------------------------------------------------------------------------------
    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.is_disabled:
            return
        total = self.total_train_batches
        description = self._get_train_description(trainer.current_epoch)
        if self.train_progress_bar_id is not None and self._leave:
            # keep the finished epoch's bar on screen: a new live display for the next one
            self._stop_progress()
            self._init_progress(trainer)
        if self.progress is not None:
            if self.train_progress_bar_id is None:
                self.train_progress_bar_id = self._add_task(total, description)
            else:
                self.progress.reset(self.train_progress_bar_id, total=total, description=description, visible=True)
        self.refresh()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.is_enabled and self.train_progress_bar_id is None and self.progress is not None:
            self._initialize_train_progress_bar_id()  # resumed in the middle of an epoch
        n = batch_idx + 1
        self._update(self.train_progress_bar_id, n)
        if self.is_enabled:  # the metrics only as often as the column can be drawn (Lightning: every batch)
            now = time.perf_counter()
            self._metrics_due = n == 1 or n == self.total_train_batches or now - self._metrics_read_at >= 1 / self.refresh_rate
            if self._metrics_due:
                self._metrics_read_at = now
        self._update_metrics(trainer, pl_module)
        self._metrics_due = True
        self.refresh()

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        self._update_metrics(trainer, pl_module)
        self.refresh()

    # -- validation --------------------------------------------------------------------------------------------------
    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled or self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        total = self.total_val_batches_current_dataloader
        if trainer.sanity_checking:
            self._hide(self.val_sanity_progress_bar_id)
            self.val_sanity_progress_bar_id = self._add_task(total, self.sanity_check_description, visible=False)
        else:
            self._hide(self.val_progress_bar_id)
            self.val_progress_bar_id = self._add_task(total, self.validation_description, visible=False)
        self.refresh()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled:
            return
        task_id = self.val_sanity_progress_bar_id if trainer.sanity_checking else self.val_progress_bar_id
        self._update(task_id, batch_idx + 1)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.is_enabled and self.val_progress_bar_id is not None and access.is_fitting(trainer):
            self._hide(self.val_progress_bar_id)
            self.refresh()

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if access.is_fitting(trainer):
            self._update_metrics(trainer, pl_module)
        self.reset_dataloader_idx_tracker()

    # -- test / predict ----------------------------------------------------------------------------------------------
    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled or self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self._hide(self.test_progress_bar_id)
        self.test_progress_bar_id = self._add_task(self.total_test_batches_current_dataloader, self.test_description)
        self.refresh()

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_enabled:
            self._update(self.test_progress_bar_id, batch_idx + 1)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.reset_dataloader_idx_tracker()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_disabled or self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        self._hide(self.predict_progress_bar_id)
        self.predict_progress_bar_id = self._add_task(self.total_predict_batches_current_dataloader, self.predict_description)
        self.refresh()

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.is_enabled:
            self._update(self.predict_progress_bar_id, batch_idx + 1)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.reset_dataloader_idx_tracker()

    # -- the end -----------------------------------------------------------------------------------------------------
    def teardown(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._stop_progress()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop_progress()
