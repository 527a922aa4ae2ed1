"""TQDMProgressBar (`lightning.pytorch.callbacks.progress.tqdm_progress`): Lightning's default bar, drawn by tqdm.

A batch costs an integer compare unless an update is due: every `refresh_rate` batches and on the last batch, as in
Lightning; the bar then moves to the batch. Drawing the line (tqdm's refresh: formatting and writing it, about
0.1 ms) happens at most every `min_refresh_interval` seconds (0.1 by default, tqdm's own interval) and always on the
last batch; only a line that is drawn reads the metrics (`get_metrics`: trainer.progress_bar_metrics, one host
sync when metrics are logged with prog_bar=True). With `min_refresh_interval=0` every update draws and reads, at
Lightning's moments exactly. Positions, totals and descriptions follow Lightning's either way, and every drawn line
shows what Lightning's would at that batch.

The bars are made by the module-level `Tqdm` class (looked up when a bar is made, so a subclass patched in here is
used); override `init_*_tqdm` to customise one bar.
"""
import importlib.util
import math
import os
import sys
import time
from typing import Any, Callable, Dict, Optional, Union

if importlib.util.find_spec("ipywidgets") is not None:  # tqdm.auto draws a widget in notebooks (needs ipywidgets)
    from tqdm.auto import tqdm as _tqdm
else:
    from tqdm import tqdm as _tqdm

from fastlight.callbacks import _trainer_access as access
from fastlight.utilities.rank_zero import rank_zero_debug

from .progress_bar import _RefreshRateProgressBar, convert_inf

__all__ = ["TQDMProgressBar", "Tqdm", "convert_inf"]

_PAD_SIZE = 5


class Tqdm(_tqdm):
    """tqdm whose numbers are padded with zeros ("1.000"), so the postfix does not jump as digits change."""

    @staticmethod
    def format_num(n: Union[int, float, str]) -> str:
        padded = isinstance(n, (float, str))
        if not isinstance(n, str):
            n = _tqdm.format_num(n)
        if padded and "e" not in n:
            if "." not in n and len(n) < _PAD_SIZE:
                try:
                    float(n)
                except ValueError:
                    return n
                n += "."
            n += "0" * (_PAD_SIZE - len(n))
        return n


class TQDMProgressBar(_RefreshRateProgressBar):
    """The default bar: a sanity-check bar, a training bar (one line per epoch with `leave=True`), and validation,
    test and predict bars.

    Args:
        refresh_rate: redraw every this many batches; 0 hides the bars. `TQDM_MINITERS` in the environment raises
            it; on Colab (`COLAB_GPU`) the default 1 becomes 20.
        process_position: offset the bars by this many lines (several bars at once).
        leave: keep each finished epoch's bar on screen.
        min_refresh_interval: fastlight only: at least this many seconds between two draws of a bar's line (the
            last batch always draws; the metrics are read for drawn lines only); the bar's position still follows
            `refresh_rate`. 0 draws and reads on every update, as Lightning does.
    """

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, min_refresh_interval: float = 0.1) -> None:
        super().__init__(self._resolve_refresh_rate(refresh_rate))
        self._process_position = process_position
        self._leave = leave
        if min_refresh_interval < 0:
            raise ValueError(f"TQDMProgressBar(min_refresh_interval={min_refresh_interval!r}) must be >= 0")
        self._min_refresh_interval = min_refresh_interval
        self._drawn_at: Dict[str, float] = {}  # when each bar ("train", "val", ...) last drew its line
        self._train_progress_bar: Optional[_tqdm] = None
        self._val_progress_bar: Optional[_tqdm] = None
        self._test_progress_bar: Optional[_tqdm] = None
        self._predict_progress_bar: Optional[_tqdm] = None

    @staticmethod
    def _resolve_refresh_rate(refresh_rate: int) -> int:
        if not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(f"TQDMProgressBar(refresh_rate={refresh_rate!r}) must be an int >= 0")
        if os.getenv("COLAB_GPU") and refresh_rate == 1:
            rank_zero_debug("Using a higher refresh rate on Colab. Setting it to `20`")
            return 20  # Colab's output cannot keep up with a redraw per batch
        if "TQDM_MINITERS" in os.environ:
            return max(int(os.environ["TQDM_MINITERS"]), refresh_rate)
        return refresh_rate

    def __getstate__(self) -> dict:
        return {k: (None if isinstance(v, _tqdm) else v) for k, v in vars(self).items()}  # tqdm objects don't pickle

    @property
    def process_position(self) -> int:
        return self._process_position

    def _bar_property(name: str):  # type: ignore[misc]
        attr = f"_{name}"

        def getter(self: "TQDMProgressBar") -> Any:
            bar = getattr(self, attr)
            if bar is None:
                raise TypeError(f"The `{self.__class__.__name__}.{attr}` reference has not been set yet.")
            return bar

        def setter(self: "TQDMProgressBar", bar: Any) -> None:
            setattr(self, attr, bar)

        return property(getter, setter)

    train_progress_bar = _bar_property("train_progress_bar")
    val_progress_bar = _bar_property("val_progress_bar")
    test_progress_bar = _bar_property("test_progress_bar")
    predict_progress_bar = _bar_property("predict_progress_bar")
    del _bar_property

    # -- the bars (override these to customise one) ------------------------------------------------------------------
    def _new_bar(self, desc: str, position: int, leave: bool, **extra: Any) -> Tqdm:
        return Tqdm(
            desc=desc,
            position=position,
            disable=self.is_disabled,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stdout,
            bar_format=self.BAR_FORMAT,
            **extra,
        )

    def init_sanity_tqdm(self) -> Tqdm:
        """The bar of the validation sanity check."""
        return self._new_bar(self.sanity_check_description, 2 * self.process_position, leave=False)

    def init_train_tqdm(self) -> Tqdm:
        """The training bar (a new one per epoch with `leave=True`)."""
        return self._new_bar(self.train_description, 2 * self.process_position, leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Tqdm:
        """The bar of `trainer.predict`."""
        return self._new_bar(self.predict_description, 2 * self.process_position, leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Tqdm:
        """The validation bar: below the training bar during fit, on its own line (kept) in `trainer.validate`."""
        has_main_bar = access.trainer_fn(self.trainer) != "validate"
        return self._new_bar(self.validation_description, 2 * self.process_position + has_main_bar, leave=not has_main_bar)

    def init_test_tqdm(self) -> Tqdm:
        """The bar of `trainer.test`."""
        return self._new_bar("Testing", 2 * self.process_position, leave=True)

    # -- when to redraw ---------------------------------------------------------------------------------------------
    def _should_update(self, current: int, total: Optional[float]) -> bool:
        return self.is_enabled and (current % self.refresh_rate == 0 or current == total)

    def _move(self, role: str, bar: Any, n: int, metrics: Optional[Callable[[], Dict[str, Any]]] = None) -> None:
        """The bar at batch `n`; its line drawn (with `metrics()` as the postfix) unless it was drawn less than
        `min_refresh_interval` s ago (the last batch always draws). A hidden bar is left alone."""
        if bar.disable:
            return
        bar.n = n
        now = time.perf_counter()  # not time.monotonic: time-based val_check_interval tests patch that clock
        if n == bar.total or now - self._drawn_at.get(role, -math.inf) >= self._min_refresh_interval:
            self._drawn_at[role] = now
            if metrics is not None:  # read (a host sync) and formatted only for a line that is drawn
                bar.set_postfix(metrics(), refresh=False)
            bar.refresh()

    def _restart(self, role: str, bar: Any, total: Any, desc: str) -> None:
        """A bar back at 0 of `total`: tqdm's reset() without a total, then the total set (so None stays open)."""
        bar.reset()
        bar.total = convert_inf(total)
        bar.initial = 0
        bar.set_description(desc)
        self._drawn_at.pop(role, None)

    def _batch_end(self, role: str, bar: Optional[Any], batch_idx: int) -> None:
        n = batch_idx + 1
        if bar is not None and self._should_update(n, bar.total):
            self._move(role, bar, n)

    # -- sanity check / fit -----------------------------------------------------------------------------------------
    def on_sanity_check_start(self, *_: Any) -> None:
        self.val_progress_bar = self.init_sanity_tqdm()
        self.train_progress_bar = Tqdm(disable=True)  # no training bar while sanity checking: a hidden stand-in

    def on_sanity_check_end(self, *_: Any) -> None:
        self.val_progress_bar.close()
        self.train_progress_bar.close()

    def on_train_start(self, *_: Any) -> None:
        self.train_progress_bar = self.init_train_tqdm()

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self._restart("train", self.train_progress_bar, self.total_train_batches, f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = batch_idx + 1
        bar = self._train_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            self._move("train", bar, n, metrics=lambda: self.get_metrics(trainer, pl_module))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not self.train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))
        if self._leave:
            self.train_progress_bar.close()

    def on_train_end(self, *_: Any) -> None:
        self.train_progress_bar.close()

    # -- validation -------------------------------------------------------------------------------------------------
    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking:
            self.val_progress_bar = self.init_validation_tqdm()

    def on_validation_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if not self.has_dataloader_changed(dataloader_idx):
            return
        desc = self.sanity_check_description if trainer.sanity_checking else self.validation_description
        self._restart("val", self.val_progress_bar, self.total_val_batches_current_dataloader, f"{desc} DataLoader {dataloader_idx}")

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("val", self._val_progress_bar, batch_idx)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        self.val_progress_bar.close()
        self.reset_dataloader_idx_tracker()
        if self._train_progress_bar is not None and access.is_fitting(trainer):
            # the validation metrics onto the training bar (also after the sanity check, as Lightning does)
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    # -- test / predict ---------------------------------------------------------------------------------------------
    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self.test_progress_bar = self.init_test_tqdm()

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._restart("test", self.test_progress_bar, self.total_test_batches_current_dataloader, f"{self.test_description} DataLoader {dataloader_idx}")

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("test", self._test_progress_bar, batch_idx)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.test_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar = self.init_predict_tqdm()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._restart("predict", self.predict_progress_bar, self.total_predict_batches_current_dataloader, f"{self.predict_description} DataLoader {dataloader_idx}")

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end("predict", self._predict_progress_bar, batch_idx)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        """Writes above the first bar that is showing (tqdm.write), so the bars are not broken."""
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar, self._predict_progress_bar):
            if bar is not None and not bar.disable:
                bar.write(sep.join(map(str, args)), **kwargs)
                return
