"""LightningDataModule: the data half of a Lightning project (prepare_data, setup, *_dataloader, teardown)."""
from typing import Any, Dict, Optional

from fastlight.core.hooks import DataHooks
from fastlight.core.hparams import HyperparametersMixin


class LightningDataModule(DataHooks, HyperparametersMixin):
    name: str = None  # type: ignore[assignment]
    CHECKPOINT_HYPER_PARAMS_KEY = "datamodule_hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "datamodule_hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "datamodule_hparams_type"

    def __init__(self) -> None:
        super().__init__()
        self.trainer = None
        self.prepare_data_per_node = True
        self.allow_zero_length_dataloader_with_multiple_devices = False

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        pass

    @classmethod
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             weights_only: Optional[bool] = None, **kwargs: Any) -> "LightningDataModule":
        """A new datamodule built from the checkpoint's datamodule hyperparameters (overridden by `hparams_file`,
        then `kwargs`), with its saved state loaded."""
        from fastlight.core.saving import _load_from_checkpoint

        return _load_from_checkpoint(cls, checkpoint_path, map_location=map_location, hparams_file=hparams_file,
                                     strict=None, weights_only=weights_only, **kwargs)

    def on_exception(self, exception: BaseException) -> None:
        pass
