"""TQDMProgressBar: Lightning's default bar on tqdm, with redraws throttled so a step costs almost nothing.

A step updates one integer. Only when a redraw is due (every `refresh_rate` batches, at most every
`min_refresh_interval` seconds, and always on the last batch) does the bar read trainer.progress_bar_metrics, turn
tensors into numbers (the one host sync) and format them.
"""
import os
import sys
import time
from typing import Any, Optional

from .progress_bar import _RefreshRateProgressBar, convert_inf

_PAD_SIZE = 5


def _tqdm_class() -> type:
    from tqdm import tqdm as _tqdm

    class Tqdm(_tqdm):
        """tqdm that pads numbers so the postfix does not flicker as digits change."""

        @staticmethod
        def format_num(n: Any) -> str:
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

    return Tqdm


class TQDMProgressBar(_RefreshRateProgressBar):
    """Args:
        refresh_rate: redraw every this many batches; 0 hides the bars.
        process_position: offset the bars by this many lines (several bars at once).
        leave: keep each finished epoch's bar on screen.
        min_refresh_interval: seconds between redraws at most (besides the last batch); 0 redraws on every
            `refresh_rate` batch as Lightning does.
    """

    BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}, {rate_noinv_fmt}{postfix}]"

    def __init__(self, refresh_rate: int = 1, process_position: int = 0, leave: bool = False, min_refresh_interval: float = 0.1) -> None:
        if not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(f"TQDMProgressBar(refresh_rate={refresh_rate!r}) must be an int >= 0")
        if "TQDM_MINITERS" in os.environ:
            refresh_rate = max(int(os.environ["TQDM_MINITERS"]), refresh_rate)
        super().__init__(refresh_rate)
        self._process_position = process_position
        self._leave = leave
        self._min_refresh_interval = min_refresh_interval
        self._last_refresh = 0.0
        self._train_progress_bar: Any = None
        self._val_progress_bar: Any = None
        self._test_progress_bar: Any = None
        self._predict_progress_bar: Any = None

    def __getstate__(self) -> dict:
        return {k: (None if k.endswith("_progress_bar") else v) for k, v in vars(self).items()}

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

    def _new_bar(self, desc: str, position: int, leave: bool, smoothing: Optional[float] = None, disable: Optional[bool] = None) -> Any:
        kwargs = dict(
            desc=desc,
            position=position,
            disable=self.is_disabled if disable is None else disable,
            leave=leave,
            dynamic_ncols=True,
            file=sys.stdout,
            bar_format=self.BAR_FORMAT,
        )
        if smoothing is not None:
            kwargs["smoothing"] = smoothing
        return _tqdm_class()(**kwargs)

    def init_sanity_tqdm(self) -> Any:
        return self._new_bar(self.sanity_check_description, 2 * self._process_position, leave=False)

    def init_train_tqdm(self) -> Any:
        return self._new_bar(self.train_description, 2 * self._process_position, leave=True, smoothing=0)

    def init_predict_tqdm(self) -> Any:
        return self._new_bar(self.predict_description, 2 * self._process_position, leave=True, smoothing=0)

    def init_validation_tqdm(self) -> Any:
        from . import _trainer_access as access

        has_main_bar = access.trainer_fn(self.trainer) != "validate"
        return self._new_bar(self.validation_description, 2 * self._process_position + has_main_bar, leave=not has_main_bar)

    def init_test_tqdm(self) -> Any:
        return self._new_bar("Testing", 2 * self._process_position, leave=True)

    # -- when to redraw ---------------------------------------------------------------------------------------------
    def _should_update(self, current: int, total: Optional[float]) -> bool:
        if not self.is_enabled:
            return False
        if current == total:
            return True
        if current % self._refresh_rate:
            return False
        if self._min_refresh_interval > 0:
            now = time.perf_counter()  # not time.monotonic: time-based val_check_interval tests patch that clock
            if now - self._last_refresh < self._min_refresh_interval:
                return False
            self._last_refresh = now
        return True

    @staticmethod
    def _update_n(bar: Any, value: int) -> None:
        if not bar.disable:
            bar.n = value
            bar.refresh()

    def _reset(self, bar: Any, total: Any, desc: str) -> None:
        bar.reset()
        bar.total = convert_inf(total)
        bar.initial = 0
        bar.set_description(desc)

    # -- sanity check / fit -----------------------------------------------------------------------------------------
    def on_sanity_check_start(self, *_: Any) -> None:
        self.val_progress_bar = self.init_sanity_tqdm()
        self.train_progress_bar = _tqdm_class()(disable=True)  # placeholder while sanity checking

    def on_sanity_check_end(self, *_: Any) -> None:
        self.val_progress_bar.close()
        self.train_progress_bar.close()

    def on_train_start(self, *_: Any) -> None:
        self.train_progress_bar = self.init_train_tqdm()

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        if self._leave:
            self.train_progress_bar = self.init_train_tqdm()
        self._reset(self.train_progress_bar, self.total_train_batches, f"Epoch {trainer.current_epoch}")

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        n = batch_idx + 1
        bar = self._train_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            bar.set_postfix(self.get_metrics(trainer, pl_module), refresh=False)
            self._update_n(bar, n)

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
        self._reset(self.val_progress_bar, self.total_val_batches_current_dataloader, f"{desc} DataLoader {dataloader_idx}")

    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        n = batch_idx + 1
        bar = self._val_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            self._update_n(bar, n)

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        from . import _trainer_access as access

        self.val_progress_bar.close()
        self.reset_dataloader_idx_tracker()
        if self._train_progress_bar is not None and access.is_fitting(trainer) and not self._train_progress_bar.disable:
            self.train_progress_bar.set_postfix(self.get_metrics(trainer, pl_module))

    # -- test / predict ---------------------------------------------------------------------------------------------
    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self.test_progress_bar = self.init_test_tqdm()

    def on_test_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._reset(self.test_progress_bar, self.total_test_batches_current_dataloader, f"{self.test_description} DataLoader {dataloader_idx}")

    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        n = batch_idx + 1
        bar = self._test_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            self._update_n(bar, n)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self.test_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar = self.init_predict_tqdm()

    def on_predict_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        if self.has_dataloader_changed(dataloader_idx):
            self._reset(self.predict_progress_bar, self.total_predict_batches_current_dataloader, f"{self.predict_description} DataLoader {dataloader_idx}")

    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        n = batch_idx + 1
        bar = self._predict_progress_bar
        if bar is not None and self._should_update(n, bar.total):
            self._update_n(bar, n)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self.predict_progress_bar.close()
        self.reset_dataloader_idx_tracker()

    def print(self, *args: Any, sep: str = " ", **kwargs: Any) -> None:
        for bar in (self._train_progress_bar, self._val_progress_bar, self._test_progress_bar, self._predict_progress_bar):
            if bar is not None and not bar.disable:
                bar.write(sep.join(map(str, args)), **kwargs)
                return
