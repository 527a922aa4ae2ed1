"""`trainer._checkpoint_connector`, `trainer._accelerator_connector` and `trainer._data_connector`: Lightning's private connectors, which user code
and tests reach into, as thin views over the Trainer's own state. Nothing is stored here: each method forwards to
the one place fastlight keeps that concept (the Trainer's restore/ckpt-path code, `checkpoint_layout`, the strategy).
"""
import os
import re
from typing import Any, Dict, Optional

from fastlight.trainer import checkpoint_layout


class CheckpointConnector:
    """Lightning's `_CheckpointConnector` surface over `Trainer._restore_checkpoint` / `_select_ckpt_path` and
    `checkpoint_layout`."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    @property
    def _ckpt_path(self) -> Optional[str]:
        return self.trainer._ckpt_path

    @property
    def _loaded_checkpoint(self) -> Optional[Dict[str, Any]]:
        return self.trainer._loaded_checkpoint

    def _parse_ckpt_path(self, state_fn: Any, ckpt_path: Optional[Any], model_provided: bool,
                         model_connected: bool) -> Optional[str]:
        """"best" / "last" / None resolved to a file (or None) for `trainer.<state_fn>(ckpt_path=...)`."""
        return self.trainer._select_ckpt_path(state_fn, ckpt_path, model_provided, model_connected)

    def resume_start(self, checkpoint_path: Optional[Any] = None, weights_only: Optional[bool] = None) -> None:
        """Read `checkpoint_path` into memory (nothing when it is None), to be restored by the calls below."""
        trainer = self.trainer
        trainer._ckpt_path = checkpoint_path
        trainer._loaded_checkpoint = None
        if checkpoint_path:
            trainer._loaded_checkpoint = trainer._read_checkpoint(checkpoint_path, weights_only)
            checkpoint_layout.pop_fastlight_entries(trainer._loaded_checkpoint)  # the hooks see Lightning's keys

    def resume_end(self) -> None:
        """Drop the checkpoint read by `resume_start` (its memory is freed)."""
        self.trainer._loaded_checkpoint = None

    def _restore_modules_and_callbacks(self, checkpoint_path: Optional[Any] = None,
                                       weights_only: Optional[bool] = None) -> None:
        """Read the file, then restore the module's weights (with its on_load_checkpoint), the datamodule's and the
        callbacks' states: the part of a restore that runs before the optimizers exist."""
        self.resume_start(checkpoint_path, weights_only)
        checkpoint = self.trainer._loaded_checkpoint
        if checkpoint is not None:
            checkpoint_layout.restore_modules_and_callbacks(self.trainer, checkpoint, source=str(checkpoint_path))

    def restore_training_state(self) -> None:
        """AMP scaler, loop progress, then (fitting) optimizer and scheduler states from the checkpoint read by
        `resume_start`; a weights-only checkpoint raises KeyError when fitting."""
        checkpoint = self.trainer._loaded_checkpoint
        if checkpoint:
            checkpoint_layout.restore_training_state(self.trainer, checkpoint, stage=self.trainer.state.fn or "fit")

    def restore(self, checkpoint_path: Optional[Any] = None, weights_only: Optional[bool] = None) -> None:
        """The whole restore from `checkpoint_path` into the attached module, callbacks, optimizers and loops."""
        self._restore_modules_and_callbacks(checkpoint_path, weights_only)
        self.restore_training_state()
        self.resume_end()

    def dump_checkpoint(self, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        """The checkpoint dict of the current state (what `trainer.save_checkpoint` writes)."""
        return checkpoint_layout.dump_checkpoint(self.trainer, bool(weights_only))

    def _get_loops_state_dict(self) -> Dict[str, Any]:
        """The checkpoint's "loops" entry for the current state (the progress objects are the live counters)."""
        return self.trainer.loop_progress.state_dict()

    @staticmethod
    def hpc_save_path(folderpath: Any) -> str:
        """`<folderpath>/hpc_ckpt_<N>.ckpt`, N one above the highest number already there (1 in an empty folder)."""
        numbers = [0]
        if os.path.isdir(folderpath):
            for name in os.listdir(folderpath):
                match = re.search(r"ckpt_(\d+)", name)
                if match:
                    numbers.append(int(match.group(1)))
        return os.path.join(folderpath, f"hpc_ckpt_{max(numbers) + 1}.ckpt")


class _DataLoaderSource:
    """Where one stage's dataloaders come from ("train", "val", "test", "predict"), as the loops hand it to
    `_request_dataloader`: the loaders given to the entry point, else the datamodule's or module's hook."""

    def __init__(self, trainer: Any, stage: str) -> None:
        self.trainer = trainer
        self.stage = stage

    def dataloader(self) -> Any:
        return self.trainer._request_dataloader(self.stage)


def _request_dataloader(source: _DataLoaderSource) -> Any:
    """The dataloaders of `source`, requested now (a hook is called). The loops call it by this module-level name,
    as Lightning's do, so a test can wrap it to count the requests."""
    return source.dataloader()


class DataConnector:
    """Lightning's `_DataConnector` attach methods over `Trainer._attach_sources`: where each stage's dataloaders come
    from (given loaders, else the datamodule's hooks, else the module's)."""

    _STAGES = ("train", "val", "test", "predict")

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    def attach_data(self, model: Any, train_dataloaders: Any = None, val_dataloaders: Any = None,
                    test_dataloaders: Any = None, predict_dataloaders: Any = None, datamodule: Any = None) -> None:
        """Every stage's loaders at once, then the datamodule (whose hooks win over the given loaders, as in
        Lightning); the module gets the trainer."""
        self.attach_dataloaders(model, train_dataloaders, val_dataloaders, test_dataloaders, predict_dataloaders)
        self.attach_datamodule(model, datamodule)
        model.trainer = self.trainer

    def attach_dataloaders(self, model: Any, train_dataloaders: Any = None, val_dataloaders: Any = None,
                           test_dataloaders: Any = None, predict_dataloaders: Any = None) -> None:
        given = dict(zip(self._STAGES, (train_dataloaders, val_dataloaders, test_dataloaders, predict_dataloaders)))
        self.trainer._attach_sources(model, self._STAGES, given)

    def prepare_data(self) -> None:
        """The datamodule's and the module's prepare_data, on the ranks that run it (Trainer._prepare_data)."""
        self.trainer._prepare_data()

    def attach_datamodule(self, model: Any, datamodule: Any = None) -> None:
        if datamodule is None:
            return
        self.trainer._attach_sources(datamodule, self._STAGES, {})
        self.trainer.datamodule = datamodule
        datamodule.trainer = self.trainer


_DataConnector = DataConnector  # Lightning's class name (lightning.pytorch.trainer.connectors.data_connector)


class AcceleratorConnector:
    """Lightning's `_AcceleratorConnector` surface: what the Trainer resolved from accelerator / strategy / devices /
    precision, read from the Trainer's config and strategy."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer

    @property
    def strategy(self) -> Any:
        return self.trainer.strategy

    @strategy.setter
    def strategy(self, strategy: Any) -> None:
        """Swap the run's strategy; it takes over the precision plugin and the module of the one it replaces."""
        old = self.trainer.strategy
        if getattr(strategy, "precision_plugin", None) is None:
            strategy.precision_plugin = old.precision_plugin
        if getattr(strategy, "module", None) is None and old.module is not None:
            strategy.connect(old.module)
        self.trainer.strategy = strategy

    @property
    def accelerator(self) -> Any:
        return self.trainer.accelerator

    @property
    def precision_plugin(self) -> Any:
        return self.trainer.precision_plugin

    @property
    def _accelerator_flag(self) -> str:
        """The resolved device kind: "cpu", "cuda" or "mps" ("auto" and "gpu" resolved, as in Lightning)."""
        return self.trainer._cfg.accelerator

    @property
    def _precision_flag(self) -> str:
        return self.trainer._cfg.precision

    @property
    def is_distributed(self) -> bool:
        return bool(getattr(self.trainer.strategy, "is_distributed", False))

    @property
    def cluster_environment(self) -> Any:
        return getattr(self.trainer.strategy, "cluster_environment", None)

    @property
    def use_distributed_sampler(self) -> bool:
        return self.trainer._cfg.use_distributed_sampler
