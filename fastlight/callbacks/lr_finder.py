"""LearningRateFinder: the learning-rate range test at the start of fit (Lightning's callback)."""
from typing import Any, Optional

from fastlight.callbacks._lr_finding import _LRFinder, lr_find
from fastlight.callbacks.callback import Callback
from fastlight.utilities.exceptions import _TunerExitException
from fastlight.utilities.seed import isolate_rng


class LearningRateFinder(Callback):
    """Runs `num_training_steps` steps with the learning rate rising from `min_lr` to `max_lr` (mode "exponential"
    or "linear"), records the smoothed loss of each, puts the model, optimizer and loop back, and (update_attr)
    sets the suggested lr on the module (`lr`/`learning_rate` or `attr_name`, in the module or its hparams) and on
    the optimizer. The results are in `optimal_lr` (`.results`, `.suggestion()`, `.plot()`). Subclasses may call
    `lr_find(trainer, pl_module)` from another hook (override `on_fit_start` to skip the default)."""

    SUPPORTED_MODES = ("linear", "exponential")

    def __init__(self, min_lr: float = 1e-8, max_lr: float = 1, num_training_steps: int = 100,
                 mode: str = "exponential", early_stop_threshold: Optional[float] = 4.0, update_attr: bool = True,
                 attr_name: str = "", weights_only: Optional[bool] = None) -> None:
        mode = mode.lower()
        if mode not in self.SUPPORTED_MODES:
            raise ValueError(f"`mode` should be either of {self.SUPPORTED_MODES}")
        self._min_lr = min_lr
        self._max_lr = max_lr
        self._num_training_steps = num_training_steps
        self._mode = mode
        self._early_stop_threshold = early_stop_threshold
        self._update_attr = update_attr
        self._attr_name = attr_name
        self._weights_only = weights_only  # how the temporary checkpoint is read back (see lr_find)
        self._early_exit = False  # set by Tuner: the fit ends after the search
        self.optimal_lr: Optional[_LRFinder] = None

    def lr_find(self, trainer: Any, pl_module: Any) -> None:
        with isolate_rng():  # the range test must not change the randomness of the training that follows
            self.optimal_lr = lr_find(
                trainer, pl_module, min_lr=self._min_lr, max_lr=self._max_lr, num_training=self._num_training_steps,
                mode=self._mode, early_stop_threshold=self._early_stop_threshold, update_attr=self._update_attr,
                attr_name=self._attr_name, weights_only=self._weights_only,
            )
        if self._early_exit:
            raise _TunerExitException()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.lr_find(trainer, pl_module)
