"""TQDMProgressBar (`lightning.pytorch.callbacks.progress.tqdm_progress`): Lightning's default bar, drawn by tqdm.

A batch costs an integer compare unless a redraw is due: every `refresh_rate` batches and on the last batch, as in
Lightning. Only then does the bar read trainer.progress_bar_metrics (the one host sync, when metrics are logged
with prog_bar=True) and format them. `min_refresh_interval` (fastlight only, off by default) also spaces redraws by
time.

The bars are made by the module-level `Tqdm` class (looked up when a bar is made, so a subclass patched in here is
used); override `init_*_tqdm` to customise one bar.
"""
import importlib.util
import os
import sys
import time
from typing import Any, Optional, Union

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


def _update_n(bar: Any, value: int) -> None:
    """Moves a bar to `value` and redraws it (a hidden bar is left alone)."""
    if not bar.disable:
        bar.n = value
        bar.refresh()


class TQDMProgressBar(_RefreshRateProgressBar):
    """The default bar: a sanity-check bar, a training bar (one line per epoch with `leave=True`), and validation,
    test and predict bars.

    Args:
        refresh_rate: redraw every this many batches; 0 hides the bars. `TQDM_MINITERS` in the environment raises
            it; on Colab (`COLAB_GPU`) the default 1 becomes 20.
        process_position: offset the bars by this many lines (several bars at once).
        leave: keep each finished epoch's bar on screen.
        min_refresh_interval: fastlight only: besides the `refresh_rate` batches, at least this many seconds
            between redraws (the last batch always redraws). 0, the default, redraws as Lightning does.
    """

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, min_refresh_interval: float = 0.0) -> None:
        super().__init__(self._resolve_refresh_rate(refresh_rate))
        self._process_position = process_position
        self._leave = leave
        if min_refresh_interval < 0:
            raise ValueError(f"TQDMProgressBar(min_refresh_interval={min_refresh_interval!r}) must be >= 0")
        self._min_refresh_interval = min_refresh_interval
        self._last_refresh = -float("inf")  # the first due redraw always happens
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
        if not self.is_enabled:
            return False
        if current == total:
            return True
        if current % self.refresh_rate:
            return False
        if self._min_refresh_interval > 0:
            now = time.perf_counter()  # not time.monotonic: time-based val_check_interval tests patch that clock
            if now - self._last_refresh < self._min_refresh_interval:
                return False
            self._last_refresh = now
        return True

    @staticmethod
    def _restart(bar: Any, total: Any, desc: str) -> None:
        """A bar back at 0 of `total`: tqdm's reset() without a total, then the total set (so None stays open)."""
        bar.reset()
        bar.total = convert_inf(total)
        bar.initial = 0
        bar.set_description(desc)

    def _batch_end(self, bar: Optional[Any], batch_idx: int) -> None:
        n = batch_idx + 1
        if bar is not None and self._should_update(n, bar.total):
            _update_n(bar, n)

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
        self._restart(self.train_progress_bar, self.total_train_batches, f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = batch_idx + 1
        bar = self._train_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            # the metrics first without a redraw, then one redraw with both (Lightning draws twice)
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            _update_n(bar, n)

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
        self._restart(self.val_progress_bar, self.total_val_batches_current_dataloader, f"{desc} DataLoader {dataloader_idx}")

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end(self._val_progress_bar, batch_idx)

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
            self._restart(self.test_progress_bar, self.total_test_batches_current_dataloader, f"{self.test_description} DataLoader {dataloader_idx}")

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end(self._test_progress_bar, batch_idx)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.test_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar = self.init_predict_tqdm()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._restart(self.predict_progress_bar, self.total_predict_batches_current_dataloader, f"{self.predict_description} DataLoader {dataloader_idx}")

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._batch_end(self._predict_progress_bar, batch_idx)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        """Writes above the first bar that is showing (tqdm.write), so the bars are not broken."""
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar, self._predict_progress_bar):
            if bar is not None and not bar.disable:
                bar.write(sep.join(map(str, args)), **kwargs)
                return
