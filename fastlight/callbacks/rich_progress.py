"""RichProgressBar: the progress bar drawn with rich (imported when the bar starts, not at import)."""
from typing import Any, Dict, Optional

from .progress_bar import _RefreshRateProgressBar, convert_inf


def _format_metrics(metrics: Dict[str, Any]) -> str:
    parts = []
    for k, v in metrics.items():
        parts.append(f"{k}: {v:.3f}" if isinstance(v, float) else f"{k}: {v}")
    return " ".join(parts)


class RichProgressBar(_RefreshRateProgressBar):
    """Args:
        refresh_rate: redraw every this many batches; 0 hides the bars.
        leave: keep each finished epoch's bar on screen.
        console_kwargs: passed to rich.console.Console.

    Like TQDMProgressBar, metrics are read and formatted only when a redraw is due.
    """

    def __init__(self, refresh_rate: int = 1, leave: bool = False, theme: Any = None, console_kwargs: Optional[Dict[str, Any]] = None) -> None:
        import importlib.util

        if importlib.util.find_spec("rich") is None:
            raise ModuleNotFoundError("RichProgressBar needs the `rich` package: `pip install rich` (or use TQDMProgressBar).")
        if not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(f"RichProgressBar(refresh_rate={refresh_rate!r}) must be an int >= 0")
        super().__init__(refresh_rate)
        self._leave = leave
        self._theme = theme
        self._console_kwargs = console_kwargs or {}
        self.progress: Any = None
        self.train_progress_bar_id: Optional[int] = None
        self.val_progress_bar_id: Optional[int] = None
        self.test_progress_bar_id: Optional[int] = None
        self.predict_progress_bar_id: Optional[int] = None
        self._metrics_text = ""

    def __getstate__(self) -> dict:
        state = dict(vars(self))
        state["progress"] = None
        return state

    def _init_progress(self) -> None:
        if not self.is_enabled or self.progress is not None:
            return
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        console = Console(**self._console_kwargs)
        self.progress = Progress(
            TextColumn("[progress.description]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("<"),
            TimeRemainingColumn(),
            TextColumn("{task.fields[metrics]}"),
            console=console,
            auto_refresh=False,
            transient=False,
        )
        self.progress.start()

    def _stop_progress(self) -> None:
        if self.progress is not None:
            self.progress.refresh()
            self.progress.stop()
            self.progress = None
            self.train_progress_bar_id = self.val_progress_bar_id = None
            self.test_progress_bar_id = self.predict_progress_bar_id = None

    def _add_task(self, total: Any, description: str, visible: bool = True) -> Optional[int]:
        if self.progress is None:
            return None
        return self.progress.add_task(description, total=convert_inf(total), visible=visible, metrics="")

    def _should_update(self, current: int, total: Any) -> bool:
        return self.is_enabled and (current % self._refresh_rate == 0 or current == total)

    def _update(self, task_id: Optional[int], current: int, metrics: Optional[str] = None) -> None:
        if self.progress is None or task_id is None:
            return
        task = self.progress.tasks[task_id] if task_id < len(self.progress.tasks) else None
        if task is None:
            return
        if self._should_update(current, task.total):
            fields = {} if metrics is None else {"metrics": metrics}
            self.progress.update(task_id, completed=current, **fields)
            self.progress.refresh()

    def _metrics(self, trainer: Any, pl_module: Any) -> str:
        return _format_metrics(self.get_metrics(trainer, pl_module))

    # -- fit --------------------------------------------------------------------------------------------------------
    def on_sanity_check_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress()

    def on_sanity_check_end(self, trainer: Any, pl_module: Any) -> None:
        if self.progress is not None and self.val_progress_bar_id is not None:
            self.progress.update(self.val_progress_bar_id, visible=False)
            self.progress.refresh()
        self.val_progress_bar_id = None

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self.progress is None:
            return
        description = f"Epoch {trainer.current_epoch}"
        if self.train_progress_bar_id is not None and self._leave:
            self.train_progress_bar_id = None  # keep the finished bar, start a new one
        if self.train_progress_bar_id is None:
            self.train_progress_bar_id = self._add_task(self.total_train_batches, description)
        else:
            self.progress.reset(self.train_progress_bar_id, total=convert_inf(self.total_train_batches), description=description, visible=True)
        self.progress.refresh()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if self.progress is None or self.train_progress_bar_id is None:
            return
        n = batch_idx + 1
        if self._should_update(n, self.progress.tasks[self.train_progress_bar_id].total):
            self._update(self.train_progress_bar_id, n, self._metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self.progress is not None and self.train_progress_bar_id is not None:
            self.progress.update(self.train_progress_bar_id, metrics=self._metrics(trainer, pl_module))
            self.progress.refresh()

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop_progress()

    def on_exception(self, trainer: Any, pl_module: Any, exception: BaseException) -> None:
        self._stop_progress()

    # -- validation -------------------------------------------------------------------------------------------------
    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.progress is None or not self.has_dataloader_changed(dataloader_idx):
            return
        desc = self.sanity_check_description if trainer.sanity_checking else self.validation_description
        if self.val_progress_bar_id is not None:
            self.progress.update(self.val_progress_bar_id, visible=False)
        self.val_progress_bar_id = self._add_task(self.total_val_batches_current_dataloader, f"{desc} DataLoader {dataloader_idx}")
        self.progress.refresh()

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(self.val_progress_bar_id, batch_idx + 1)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        from . import _trainer_access as access

        if self.progress is not None and self.val_progress_bar_id is not None and access.is_fitting(trainer):
            self.progress.update(self.val_progress_bar_id, visible=False)
        if self.progress is not None and self.train_progress_bar_id is not None and access.is_fitting(trainer):
            self.progress.update(self.train_progress_bar_id, metrics=self._metrics(trainer, pl_module))
            self.progress.refresh()
        self.val_progress_bar_id = None
        self.reset_dataloader_idx_tracker()
        if not access.is_fitting(trainer):
            self._stop_progress()

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress()

    # -- test / predict ---------------------------------------------------------------------------------------------
    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress()

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.progress is not None and self.has_dataloader_changed(dataloader_idx):
            self.test_progress_bar_id = self._add_task(self.total_test_batches_current_dataloader, f"{self.test_description} DataLoader {dataloader_idx}")

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(self.test_progress_bar_id, batch_idx + 1)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop_progress()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self._init_progress()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.progress is not None and self.has_dataloader_changed(dataloader_idx):
            self.predict_progress_bar_id = self._add_task(self.total_predict_batches_current_dataloader, f"{self.predict_description} DataLoader {dataloader_idx}")

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._update(self.predict_progress_bar_id, batch_idx + 1)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._stop_progress()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        if self.progress is not None:
            self.progress.console.print(*args, sep=sep, **kwargs)
        else:
            print(*args, sep=sep, **kwargs)
