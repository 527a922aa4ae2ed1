"""LightningDataModule: the data half of a Lightning project (prepare_data, setup, *_dataloader, teardown)."""
import inspect
import os
from typing import Any, Dict, Iterable, Optional, Union

from torch.utils.data import DataLoader, Dataset, IterableDataset

from fastlight.core.hooks import DataHooks
from fastlight.core.hparams import HyperparametersMixin
from fastlight.utilities.model_helpers import _restricted_classmethod


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

    @classmethod
    def from_datasets(
        cls,
        train_dataset: Optional[Union[Dataset, Iterable[Dataset]]] = None,
        val_dataset: Optional[Union[Dataset, Iterable[Dataset]]] = None,
        test_dataset: Optional[Union[Dataset, Iterable[Dataset]]] = None,
        predict_dataset: Optional[Union[Dataset, Iterable[Dataset]]] = None,
        batch_size: int = 1,
        num_workers: int = 0,
        **datamodule_kwargs: Any,
    ) -> "LightningDataModule":
        """A datamodule (`cls(**datamodule_kwargs)`, plus `batch_size`/`num_workers` when its __init__ takes them)
        whose `*_dataloader` hooks wrap the given datasets in DataLoaders (`batch_size`, `num_workers`,
        pin_memory=True; shuffled for training only, never an IterableDataset). A stage's argument may be one dataset
        or a list/tuple/dict of them (one loader each); a stage left None keeps the class's own hook."""

        def loader(dataset: Dataset, shuffle: bool) -> DataLoader:
            return DataLoader(dataset, batch_size=batch_size, shuffle=shuffle and not isinstance(dataset, IterableDataset),
                              num_workers=num_workers, pin_memory=True)

        def loaders(datasets: Any, shuffle: bool) -> Any:
            if isinstance(datasets, Dataset):
                return loader(datasets, shuffle)
            if isinstance(datasets, dict):
                return {k: loaders(v, shuffle) for k, v in datasets.items()}
            if isinstance(datasets, (list, tuple)):
                return type(datasets)(loaders(d, shuffle) for d in datasets)
            return datasets  # not a dataset: handed to the trainer as is, as Lightning does

        params = inspect.signature(cls.__init__).parameters
        special = {"batch_size": batch_size, "num_workers": num_workers}
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            special = {k: v for k, v in special.items() if k in params}
        datamodule = cls(**datamodule_kwargs, **special)
        for stage, datasets in (("train", train_dataset), ("val", val_dataset), ("test", test_dataset),
                                ("predict", predict_dataset)):
            if datasets is not None:
                # bound now: each hook returns fresh loaders over its own datasets on every call
                def hook(datasets: Any = datasets, shuffle: bool = stage == "train") -> Any:
                    return loaders(datasets, shuffle)

                setattr(datamodule, f"{stage}_dataloader", hook)
        return datamodule

    def __str__(self) -> str:
        """One line per dataloader hook, as Lightning prints a datamodule: "{Train dataloader: size=N}" (the
        dataset's length, "NA" when it has none; "1. size=N ; 2. size=M" for several loaders; "None" when the hook
        is missing or fails)."""
        def describe(loader: Any) -> str:
            if isinstance(loader, DataLoader):
                dataset = loader.dataset
                return f"size={len(dataset) if hasattr(dataset, '__len__') else 'NA'}"
            return "None"

        lines = []
        for title, hook in (("Train dataloader", "train_dataloader"), ("Validation dataloader", "val_dataloader"),
                            ("Test dataloader", "test_dataloader"), ("Predict dataloader", "predict_dataloader")):
            try:
                loaders = getattr(self, hook)()
            except Exception:  # noqa: BLE001 - a hook that is not there or cannot run is shown as None
                loaders = None
            if isinstance(loaders, dict):
                loaders = list(loaders.values())
            if isinstance(loaders, (list, tuple)):
                text = " ; ".join(f"{i}. {d}" if d != "None" else d
                                  for i, d in enumerate((describe(dl) for dl in loaders), start=1))
            else:
                text = describe(loaders)
            lines.append(f"{{{title}: {text}}}")
        return os.linesep.join(lines)

    def state_dict(self) -> Dict[str, Any]:
        return {}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        pass

    @_restricted_classmethod  # a classmethod that refuses to run on an instance (the result would be dropped)
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             weights_only: Optional[bool] = None, **kwargs: Any) -> "LightningDataModule":
        """A new datamodule built from the checkpoint's datamodule hyperparameters (overridden by `hparams_file`,
        then `kwargs`), with its saved state loaded."""
        from fastlight.core.saving import _load_from_checkpoint

        return _load_from_checkpoint(cls, checkpoint_path, map_location=map_location, hparams_file=hparams_file,
                                     strict=None, weights_only=weights_only, **kwargs)

    def on_exception(self, exception: BaseException) -> None:
        pass
