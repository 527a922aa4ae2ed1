"""ProgressBar (`lightning.pytorch.callbacks.progress.progress_bar`): the base class of the progress bars. It keeps the
trainer, tells the bars their batch totals and gathers the metrics they show."""
import math
from typing import Any, Dict, Optional, Union

from torch import Tensor

from fastlight.callbacks import _trainer_access as access
from fastlight.callbacks.callback import Callback
from fastlight.utilities.rank_zero import rank_zero_warn


def loggers_version(loggers: Any) -> Any:
    """The loggers' version for "v_num": the one logger's, or the distinct versions joined by "_"."""
    if len(loggers) == 1:
        return loggers[0].version
    return "_".join(dict.fromkeys(str(lg.version) for lg in loggers))


def get_standard_metrics(trainer: Any) -> Dict[str, Union[int, str]]:
    """What every bar shows besides the logged metrics: the logger's version as "v_num" (the last 4 characters of a
    string version), when there is a logger with a version."""
    items: Dict[str, Union[int, str]] = {}
    loggers = getattr(trainer, "loggers", None) or []
    if loggers:
        version = loggers_version(loggers)
        if version not in ("", None):
            items["v_num"] = version[-4:] if isinstance(version, str) else version
    return items


def to_number(value: Any) -> Any:
    """A metric as a python number for display. fastlight's trainer.progress_bar_metrics holds numbers already; a
    tensor put there by other code costs one host transfer here, only when the bar shows it."""
    if isinstance(value, Tensor):
        return value.item() if value.numel() == 1 else value.tolist()
    return value


def convert_inf(x: Optional[Union[int, float]]) -> Optional[Union[int, float]]:
    """A batch total for tqdm: None (an open-ended bar) for inf and nan."""
    if x is None or math.isinf(x) or math.isnan(x):
        return None
    return x


class ProgressBar(Callback):
    """Subclass it for a custom bar: implement `disable`/`enable`, override `get_metrics` to change what is shown, and
    read the batch totals below. `print` is what `LightningModule.print` calls while the bar is enabled."""

    def __init__(self) -> None:
        self._trainer: Any = None
        self._current_eval_dataloader_idx: Optional[int] = None
        self._warned_duplicates = False

    @property
    def trainer(self) -> Any:
        if self._trainer is None:
            raise TypeError(f"The `{self.__class__.__name__}._trainer` reference has not been set yet.")
        return self._trainer

    @property
    def sanity_check_description(self) -> str:
        return "Sanity Checking"

    @property
    def train_description(self) -> str:
        return "Training"

    @property
    def validation_description(self) -> str:
        return "Validation"

    @property
    def test_description(self) -> str:
        return "Testing"

    @property
    def predict_description(self) -> str:
        return "Predicting"

    @property
    def total_train_batches(self) -> Union[int, float]:
        """Training batches this epoch (inf for an iterable without a length); with max_epochs=-1 and max_steps,
        no more than the steps left."""
        trainer = self.trainer
        if trainer.max_epochs == -1 and trainer.max_steps is not None and trainer.max_steps > 0:
            return min(trainer.num_training_batches, trainer.max_steps - trainer.global_step)
        return trainer.num_training_batches

    def _eval_total(self, batches: Any) -> Union[int, float]:
        if isinstance(batches, (list, tuple)):
            return batches[self._current_eval_dataloader_idx or 0]
        return batches

    @property
    def total_val_batches_current_dataloader(self) -> Union[int, float]:
        """Batches of the validation dataloader running now (the sanity-check count while sanity checking)."""
        trainer = self.trainer
        if trainer.sanity_checking:
            batches = getattr(trainer, "num_sanity_val_batches", None)
            if batches is None:
                val = trainer.num_val_batches
                steps = trainer.num_sanity_val_steps
                batches = [min(steps, v) for v in val] if isinstance(val, (list, tuple)) else min(steps, val)
        else:
            batches = trainer.num_val_batches
        return self._eval_total(batches)

    @property
    def total_test_batches_current_dataloader(self) -> Union[int, float]:
        return self._eval_total(self.trainer.num_test_batches)

    @property
    def total_predict_batches_current_dataloader(self) -> Union[int, float]:
        return self._eval_total(self.trainer.num_predict_batches)

    @property
    def total_val_batches(self) -> Union[int, float]:
        """Validation batches of all dataloaders this epoch; 0 in an epoch that does not validate."""
        trainer = self.trainer
        every = getattr(trainer, "check_val_every_n_epoch", 1)
        if every is not None and every > 1 and (trainer.current_epoch + 1) % every != 0:
            return 0
        return access.total_val_batches(trainer)

    def has_dataloader_changed(self, dataloader_idx: int) -> bool:
        old = self._current_eval_dataloader_idx
        self._current_eval_dataloader_idx = dataloader_idx
        return old != dataloader_idx

    def reset_dataloader_idx_tracker(self) -> None:
        self._current_eval_dataloader_idx = None

    def disable(self) -> None:
        raise NotImplementedError

    def enable(self) -> None:
        raise NotImplementedError

    def print(self, *args: Any, **kwargs: Any) -> None:
        print(*args, **kwargs)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self._trainer = trainer
        if not trainer.is_global_zero:
            self.disable()

    def get_metrics(self, trainer: Any, pl_module: Any) -> Dict[str, Any]:
        """What the bar shows: v_num and trainer.progress_bar_metrics. Called only when the bar redraws."""
        standard = get_standard_metrics(trainer)
        pbar = trainer.progress_bar_metrics  # host sync: the logged values become numbers (the bar shows numbers)
        duplicates = list(standard.keys() & pbar.keys())
        if duplicates and not self._warned_duplicates:
            self._warned_duplicates = True
            rank_zero_warn(
                f"The progress bar already tracks a metric with the name(s) '{', '.join(duplicates)}' and"
                f" `self.log('{duplicates[0]}', ..., prog_bar=True)` will overwrite this value. "
                " If this is undesired, change the name or override `get_metrics()` in the progress bar callback."
            )
        return {**standard, **{k: to_number(v) for k, v in pbar.items()}}


class _RefreshRateProgressBar(ProgressBar):
    """What the TQDM and rich bars share: a refresh rate (0 hides the bar) and `disable()`/`enable()` (the Trainer
    disables the bar on ranks other than 0)."""

    def __init__(self, refresh_rate: int) -> None:
        super().__init__()
        if not isinstance(refresh_rate, int) or refresh_rate < 0:
            raise ValueError(f"{type(self).__name__}(refresh_rate={refresh_rate!r}) must be an int >= 0")
        self._refresh_rate = refresh_rate
        self._enabled = True

    @property
    def refresh_rate(self) -> int:
        return self._refresh_rate

    @property
    def is_enabled(self) -> bool:
        return self._enabled and self.refresh_rate > 0

    @property
    def is_disabled(self) -> bool:
        return not self.is_enabled

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True
