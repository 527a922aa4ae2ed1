"""BatchSizeFinder: the largest batch size that runs without running out of memory, found at the start of fit,
validate, test or predict (Lightning's callback)."""
from typing import Any, Optional

from fastlight.callbacks._batch_scaling import scale_batch_size
from fastlight.callbacks.callback import Callback
from fastlight.utilities.exceptions import MisconfigurationException, _TunerExitException
from fastlight.utilities.parsing import lightning_hasattr
from fastlight.utilities.rank_zero import rank_zero_warn


class BatchSizeFinder(Callback):
    """Tries batch sizes from `init_val` ("power": doubling until an out-of-memory error, then the last that fit;
    "binsearch": doubling, then bisecting, minus `margin`), `steps_per_trial` training steps each, writing the size
    to `batch_arg_name` in the module, its hparams or the datamodule. The dataloaders must come from the module or
    datamodule (they are rebuilt per trial). The size found is in `optimal_batch_size`."""

    SUPPORTED_MODES = ("power", "binsearch")

    def __init__(self, mode: str = "power", steps_per_trial: int = 3, init_val: int = 2, max_trials: int = 25,
                 batch_arg_name: str = "batch_size", margin: float = 0.05, max_val: int = 8192) -> None:
        mode = mode.lower()
        if mode not in self.SUPPORTED_MODES:
            raise ValueError(f"`mode` should be either of {self.SUPPORTED_MODES}")
        if not 0.0 <= margin < 1.0:
            raise ValueError(f"`margin` should be between 0 and 1. Found margin={margin}")
        self.optimal_batch_size: Optional[int] = init_val
        self._mode = mode
        self._steps_per_trial = steps_per_trial
        self._init_val = init_val
        self._max_trials = max_trials
        self._batch_arg_name = batch_arg_name
        self._margin = margin
        self._max_val = max_val
        self._early_exit = False  # set by Tuner: the fit ends after the search

    def setup(self, trainer: Any, pl_module: Any, stage: Optional[str] = None) -> None:
        if trainer.strategy.is_distributed:
            raise MisconfigurationException("The Batch size finder is not supported with distributed strategies.")
        stage = str(getattr(stage, "value", stage))
        if stage != "fit":
            prefix = {"validate": "val"}.get(stage, stage)
            loaders = trainer._request_dataloader(prefix)
            if isinstance(loaders, (list, tuple, dict)) and len(loaders) > 1:
                raise MisconfigurationException(
                    f"The Batch size finder cannot be used with multiple {prefix} dataloaders."
                )
        elif trainer._train_source is None or trainer._train_source[0] != "hook":
            raise MisconfigurationException(
                "The Batch size finder cannot be used with dataloaders passed directly to `.fit()`. Please disable"
                " the feature or incorporate the dataloader into your LightningModule or LightningDataModule."
            )
        name = self._batch_arg_name
        if not lightning_hasattr(pl_module, name):
            raise MisconfigurationException(
                f"Field {name} not found in `model`, `datamodule`, nor their `hparams` attributes."
            )
        hparams = getattr(pl_module, "hparams", None)
        if hasattr(pl_module, name) and hparams is not None and name in hparams:
            rank_zero_warn(
                f"Field `model.{name}` and `model.hparams.{name}` are mutually exclusive! `model.{name}` will be"
                " used as the initial batch size for scaling. If this is not the intended behavior, please remove"
                " either one."
            )

    def scale_batch_size(self, trainer: Any, pl_module: Any) -> None:
        self.optimal_batch_size = scale_batch_size(
            trainer, self._mode, self._steps_per_trial, self._init_val, self._max_trials, self._batch_arg_name,
            self._margin, self._max_val,
        )
        if self._early_exit:
            raise _TunerExitException()

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if trainer.sanity_checking or str(getattr(trainer.state.fn, "value", trainer.state.fn)) != "validate":
            return  # a fit's validation runs with the size the fit's search found
        self.scale_batch_size(trainer, pl_module)

    def on_test_start(self, trainer: Any, pl_module: Any) -> None:
        self.scale_batch_size(trainer, pl_module)

    def on_predict_start(self, trainer: Any, pl_module: Any) -> None:
        self.scale_batch_size(trainer, pl_module)
