"""Tuner: runs LearningRateFinder / BatchSizeFinder for one call of `Trainer.fit`, which ends after the search."""
from typing import Any, Optional

from fastlight.callbacks.batch_size_finder import BatchSizeFinder
from fastlight.callbacks.lr_finder import LearningRateFinder
from fastlight.utilities.exceptions import MisconfigurationException

_METHODS = ("fit", "validate", "test", "predict")


def _check_method(method: str, train_dataloaders: Any, val_dataloaders: Any, dataloaders: Any) -> None:
    if method not in _METHODS:
        raise ValueError(f"method {method!r} is invalid. Should be one of {_METHODS}.")
    if method == "fit" and dataloaders is not None:
        raise MisconfigurationException(
            f"In tuner with method={method!r}, `dataloaders` argument should be None, please consider setting"
            " `train_dataloaders` and `val_dataloaders` instead."
        )
    if method != "fit" and (train_dataloaders is not None or val_dataloaders is not None):
        raise MisconfigurationException(
            f"In tuner with `method`={method!r}, `train_dataloaders` and `val_dataloaders` arguments should be None,"
            " please consider setting `dataloaders` instead."
        )


class Tuner:
    """`Tuner(trainer).lr_find(model, ...)` and `.scale_batch_size(model, ...)`: each adds its callback in front of
    the trainer's, runs `trainer.fit` (which stops once the search is done) and removes the callback again."""

    def __init__(self, trainer: Any) -> None:
        self._trainer = trainer

    def _fit_with(self, callback: Any, model: Any, train_dataloaders: Any, val_dataloaders: Any,
                  datamodule: Any) -> None:
        trainer = self._trainer
        callback._early_exit = True
        trainer.callbacks = [callback] + trainer.callbacks
        try:
            trainer.fit(model, train_dataloaders, val_dataloaders, datamodule)
        finally:
            trainer.callbacks = [cb for cb in trainer.callbacks if cb is not callback]

    def _run_with(self, callback: Any, method: str, model: Any, dataloaders: Any, datamodule: Any) -> None:
        """`trainer.validate/test/predict` with `callback` in front of the trainer's (it ends the call once done)."""
        trainer = self._trainer
        callback._early_exit = True
        trainer.callbacks = [callback] + trainer.callbacks
        try:
            getattr(trainer, method)(model, dataloaders, datamodule=datamodule)
        finally:
            trainer.callbacks = [cb for cb in trainer.callbacks if cb is not callback]

    def scale_batch_size(self, model: Any, train_dataloaders: Any = None, val_dataloaders: Any = None,
                         dataloaders: Any = None, datamodule: Any = None, method: str = "fit", mode: str = "power",
                         steps_per_trial: int = 3, init_val: int = 2, max_trials: int = 25,
                         batch_arg_name: str = "batch_size", margin: float = 0.05,
                         max_val: int = 8192) -> Optional[int]:
        """The largest batch size (from `init_val`, "power" or "binsearch") whose `steps_per_trial` training steps
        run without an out-of-memory error; written to `batch_arg_name` (module, hparams or datamodule)."""
        _check_method(method, train_dataloaders, val_dataloaders, dataloaders)
        trainer = self._trainer
        if trainer.strategy.is_distributed:
            raise ValueError("Tuning the batch size is currently not supported with distributed strategies.")
        if any(isinstance(cb, BatchSizeFinder) for cb in trainer.callbacks):
            raise ValueError("Trainer is already configured with a `BatchSizeFinder` callback. Please remove it if"
                             " you want to use the Tuner.")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"`margin` should be between 0 and 1. Found margin={margin}")
        finder = BatchSizeFinder(mode=mode, steps_per_trial=steps_per_trial, init_val=init_val,
                                 max_trials=max_trials, batch_arg_name=batch_arg_name, margin=margin, max_val=max_val)
        if method == "fit":
            self._fit_with(finder, model, train_dataloaders, val_dataloaders, datamodule)
        else:
            self._run_with(finder, method, model, dataloaders, datamodule)
        return finder.optimal_batch_size

    def lr_find(self, model: Any, train_dataloaders: Any = None, val_dataloaders: Any = None,
                dataloaders: Any = None, datamodule: Any = None, method: str = "fit", min_lr: float = 1e-8,
                max_lr: float = 1, num_training: int = 100, mode: str = "exponential",
                early_stop_threshold: Optional[float] = 4.0, update_attr: bool = True, attr_name: str = "",
                weights_only: Optional[bool] = None) -> Any:
        """The learning-rate range test (see LearningRateFinder); returns the results object (`.results`,
        `.suggestion()`, `.plot()`), or None with fast_dev_run. `weights_only`: how the temporary checkpoint is read
        back (False when the module's hyperparameters hold objects a safe load refuses, e.g. an nn.Module)."""
        if method != "fit":
            raise MisconfigurationException("method='fit' is the only valid configuration to run lr finder.")
        _check_method(method, train_dataloaders, val_dataloaders, dataloaders)
        trainer = self._trainer
        if any(isinstance(cb, LearningRateFinder) for cb in trainer.callbacks):
            raise ValueError("Trainer is already configured with a `LearningRateFinder` callback. Please remove it"
                             " if you want to use the Tuner.")
        finder = LearningRateFinder(min_lr=min_lr, max_lr=max_lr, num_training_steps=num_training, mode=mode,
                                    early_stop_threshold=early_stop_threshold, update_attr=update_attr,
                                    attr_name=attr_name, weights_only=weights_only)
        self._fit_with(finder, model, train_dataloaders, val_dataloaders, datamodule)
        return finder.optimal_lr
