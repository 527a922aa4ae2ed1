"""Trainer: Lightning's Trainer API. Flags are normalized once (config.py); the loops live in fit_loop.py
(the whole fit loop, in execution order) and evaluation.py (validate / test / predict)."""
import math
import os
import signal
from operator import attrgetter
from typing import Any, Dict, Iterable, List, Optional, Union

import torch
from torch import Tensor

from fastlight.callbacks.callback import Callback
from fastlight.core.datamodule import LightningDataModule
from fastlight.core.hooks import TRANSFER_HOOKS, transfer_hook_owner
from fastlight.core.module import LightningModule
from fastlight.core.optimizer import LightningOptimizer
from fastlight.loops.fetchers import _takes_dataloader_iter
from fastlight.trainer.compiled import module_channels_last, unwrap_compiled
from fastlight.trainer.config import ConfigError, _limit, build_config, resolve_loop_limits, with_env_var_defaults
from fastlight.core.optimizer_config import init_optimizers_and_schedulers
from fastlight.trainer.precision import Precision, make_precision
from fastlight.trainer.states import TrainerState
from fastlight.trainer.results import LoggingError, MetricsHub, ResultCollection, parse_reduce_fx, resolve_log_levels
from fastlight.utilities.combined_loader import CombinedLoader, _map_iterables
from fastlight.utilities.data import _auto_add_worker_init_fn, _worker_check
from fastlight.utilities.metric_objects import is_metric_object
from fastlight.utilities.parsing import clean_namespace
from fastlight.utilities.exceptions import MisconfigurationException, _TunerExitException
from fastlight.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fastlight.utilities.seed import isolate_rng
from fastlight.utilities.warnings import PossibleUserWarning

# Module hooks whose default does nothing: skipped unless the module's class overrides them.
_NOOP_MODULE_HOOKS = frozenset((
    "on_fit_start", "on_fit_end", "on_train_start", "on_train_end", "on_validation_start", "on_validation_end",
    "on_test_start", "on_test_end", "on_predict_start", "on_predict_end", "on_train_batch_start",
    "on_train_batch_end", "on_validation_batch_start", "on_validation_batch_end", "on_test_batch_start",
    "on_test_batch_end", "on_predict_batch_start", "on_predict_batch_end", "on_train_epoch_start",
    "on_train_epoch_end", "on_validation_epoch_start", "on_validation_epoch_end", "on_test_epoch_start",
    "on_test_epoch_end", "on_predict_epoch_start", "on_predict_epoch_end", "on_before_zero_grad",
    "on_before_backward", "on_after_backward", "on_before_optimizer_step", "prepare_data", "setup", "teardown",
    "configure_model", "configure_callbacks",
))
_CALLBACK_HOOKS = tuple(n for n, f in vars(Callback).items() if (n.startswith("on_") or n in ("setup", "teardown"))
                        and callable(f))


class MisconfigurationError(MisconfigurationException, ValueError):
    """The module, datamodule or dataloaders cannot be trained as given."""


class Trainer:
    @with_env_var_defaults
    def __init__(
        self,
        *,
        accelerator: str = "auto",
        strategy: Any = "auto",
        devices: Any = "auto",
        num_nodes: int = 1,
        precision: Any = None,
        logger: Any = None,
        callbacks: Optional[Union[List[Callback], Callback]] = None,
        fast_dev_run: Union[int, bool] = False,
        max_epochs: Optional[int] = None,
        min_epochs: Optional[int] = None,
        max_steps: int = -1,
        min_steps: Optional[int] = None,
        max_time: Any = None,
        limit_train_batches: Optional[Union[int, float]] = None,
        limit_val_batches: Optional[Union[int, float]] = None,
        limit_test_batches: Optional[Union[int, float]] = None,
        limit_predict_batches: Optional[Union[int, float]] = None,
        overfit_batches: Union[int, float] = 0.0,
        val_check_interval: Optional[Union[int, float]] = None,
        check_val_every_n_epoch: Optional[int] = 1,
        num_sanity_val_steps: Optional[int] = None,
        log_every_n_steps: Optional[int] = None,
        enable_checkpointing: Optional[bool] = None,
        enable_progress_bar: Optional[bool] = None,
        enable_model_summary: Optional[bool] = None,
        accumulate_grad_batches: int = 1,
        gradient_clip_val: Optional[Union[int, float]] = None,
        gradient_clip_algorithm: Optional[str] = None,
        deterministic: Any = None,
        benchmark: Optional[bool] = None,
        inference_mode: bool = True,
        use_distributed_sampler: bool = True,
        profiler: Any = None,
        detect_anomaly: bool = False,
        barebones: bool = False,
        plugins: Any = None,
        sync_batchnorm: bool = False,
        reload_dataloaders_every_n_epochs: int = 0,
        default_root_dir: Optional[Any] = None,
        enable_autolog_hparams: bool = True,
        suggest_integrations: bool = True,
        fused: bool = True,
        flat_grads: Union[bool, str] = "auto",
        batched_input: bool = True,
        cuda_graphs: Union[bool, str] = False,
        channels_last: bool = False,
    ) -> None:
        """Lightning's Trainer arguments, plus fastlight's. `suggest_integrations` is accepted and kept as
        `trainer.suggest_integrations`; Lightning prints tips for its cloud services with it, fastlight has none to
        suggest, so nothing is printed either way.

        fused: use the fused engine (default True): torch.optim.Adam/AdamW/SGD from `configure_optimizers`
            step with fastlight's fused kernels (the same objects, reporting and saving as torch's:
            fastlight.engine.optim.fuse_in_place), gradient clipping is folded into the step (one read-only stats pass), and
            precision="16-mixed" scales the loss on the device (DeviceGradScaler: no host sync per step).
            False: plain PyTorch, weights bit-for-bit equal to PyTorch Lightning's.
        flat_grads: "auto" (default), True or False. Flat gradient buffers (one contiguous buffer per device
            and dtype, `param.grad` views into it, zero_grad one memset) for the fused optimizers. "auto" is
            off: measured slower end to end on CUDA and on the CPU (BENCHMARKS.md). Needs fused=True; never
            built under DDP.
        batched_input: True (default): a DataLoader over a TensorDataset (num_workers=0, default collate and batch
            sampler) fetches each batch with one `index_select` per tensor instead of batch_size `__getitem__`
            calls and a collate; the batches are the same bit for bit (fastlight/trainer/input_path.py). On CUDA
            the next batch is copied from reused pinned buffers on a side stream. False (or the environment
            variable FASTLIGHT_BATCHED_INPUT=0): the DataLoader's own iteration.
        cuda_graphs: False (default), True or "auto": capture the whole training step as one CUDA graph and
            replay it per batch (fastlight/trainer/graph_step.py). Refused with one info line (and run eagerly)
            when the step cannot be captured: CPU device, manual optimization, an overridden optimizer_step, an
            optimizer the fused engine does not manage, batch shapes that change.
        channels_last: convert the module's 4-D parameters and the 4-D float tensors of each batch to
            `torch.channels_last` memory format (conv nets on CUDA with mixed precision); values are unchanged.
        """
        cfg = build_config(
            accelerator=accelerator, strategy=strategy, devices=devices, precision=precision, logger=logger,
            fast_dev_run=fast_dev_run, max_epochs=max_epochs, min_epochs=min_epochs, max_steps=max_steps,
            min_steps=min_steps, max_time=max_time,
            limit_train_batches=limit_train_batches, limit_val_batches=limit_val_batches,
            limit_test_batches=limit_test_batches, limit_predict_batches=limit_predict_batches,
            overfit_batches=overfit_batches, val_check_interval=val_check_interval,
            check_val_every_n_epoch=check_val_every_n_epoch, num_sanity_val_steps=num_sanity_val_steps,
            log_every_n_steps=log_every_n_steps, enable_checkpointing=enable_checkpointing,
            enable_progress_bar=enable_progress_bar, enable_model_summary=enable_model_summary,
            accumulate_grad_batches=accumulate_grad_batches, gradient_clip_val=gradient_clip_val,
            gradient_clip_algorithm=gradient_clip_algorithm, deterministic=deterministic, benchmark=benchmark,
            inference_mode=inference_mode, use_distributed_sampler=use_distributed_sampler,
            detect_anomaly=detect_anomaly, barebones=barebones, profiler=profiler,
            reload_dataloaders_every_n_epochs=reload_dataloaders_every_n_epochs, default_root_dir=default_root_dir,
            fused=fused, flat_grads=flat_grads, batched_input=batched_input, cuda_graphs=cuda_graphs,
            channels_last=channels_last,
        )
        self._cfg = cfg
        self.enable_autolog_hparams = enable_autolog_hparams
        self.suggest_integrations = bool(suggest_integrations)
        self.profiler = _resolve_profiler(profiler)
        self.plugins = plugins
        self._apply_determinism(cfg)

        self.state = TrainerState()
        self.should_stop = False
        self.sanity_checking = False
        self.training = self.validating = self.testing = self.predicting = False
        self.received_sigterm = False
        self.datamodule: Optional[LightningDataModule] = None
        self.lr_scheduler_configs: list = []
        precision = make_precision(cfg.precision, cfg.device.type, fused=cfg.fused, device=cfg.device)
        from fastlight.plugins import CheckpointIO, TorchSyncBatchNorm

        checkpoint_io = None
        for plugin in ([plugins] if plugins is not None and not isinstance(plugins, (list, tuple)) else plugins or []):
            if isinstance(plugin, Precision):  # a precision plugin object wins over the `precision` flag
                precision = plugin
            elif isinstance(plugin, CheckpointIO):
                checkpoint_io = plugin
            elif isinstance(plugin, TorchSyncBatchNorm):
                sync_batchnorm = True
            else:
                raise ConfigError(f"`Trainer(plugins=...)`: unsupported plugin {plugin!r} (fastlight takes precision"
                                  " plugins, a CheckpointIO and TorchSyncBatchNorm; pass a cluster environment to"
                                  " DDPStrategy(cluster_environment=...)).")
        self.strategy = _resolve_strategy(strategy, cfg, devices, num_nodes, sync_batchnorm)
        # the strategy holds the run's precision plugin and module (Lightning's layout): `_precision`, `_module`,
        # `precision_plugin`, `lightning_module` and `model` below read them there
        self.strategy.precision_plugin = precision
        self._hub = MetricsHub(self)
        self._train_results = ResultCollection(training=True)
        self._active_results: Optional[ResultCollection] = None
        from fastlight.trainer.checkpoint_layout import LoopProgress

        # Lightning's loop counters, as written under a checkpoint's "loops": the loops move them, and current_epoch,
        # global_step and _batches_that_stepped are read from them (one store)
        self.loop_progress = LoopProgress()
        self.checkpoint_io: Any = checkpoint_io  # None: fastlight.utilities.checkpoint_io.TorchCheckpointIO
        self._ckpt_path: Optional[str] = None
        self._loaded_checkpoint: Optional[Dict[str, Any]] = None
        self._transfer_owners: Dict[str, Any] = {}  # hook name -> the module or datamodule whose hook runs
        self._loaded_checkpoint_extras: Dict[str, Any] = {}  # its fastlight entries (the exact-resume state)

        self.num_training_batches: float = float("inf")
        self.num_sanity_val_batches: List[float] = []
        self.num_predict_batches: List[float] = []
        self.val_check_batch: Optional[float] = None  # set when the fit's train loader is set up
        self._last_val_time = 0.0
        self._train_start_time = 0.0

        self._train_source: Any = None
        self._val_source: Any = None
        self._test_source: Any = None
        self._predict_source: Any = None
        self.train_dataloader: Any = None
        self.val_dataloaders: Any = None
        self.test_dataloaders: Any = None
        self.predict_dataloaders: Any = None

        from fastlight.trainer.fit_loop import FitLoop
        from fastlight.trainer.evaluation import EvaluationLoop, PredictionLoop

        self.fit_loop = FitLoop(self)
        from fastlight.trainer.signals import SignalHandling

        self._signals = SignalHandling(self)  # SIGTERM / Ctrl-C: a graceful stop at a batch boundary
        self.validate_loop = EvaluationLoop(self, "validate")
        self.test_loop = EvaluationLoop(self, "test")
        self.predict_loop = PredictionLoop(self)

        self.loggers = self._configure_loggers(logger)
        self.callbacks = self._configure_callbacks(callbacks)
        self._cb_hooks: Dict[str, tuple] = {}
        self._module_skip: frozenset = frozenset()
        self._log_arg_cache: Dict[tuple, tuple] = {}
        self._active_hooks: frozenset = frozenset()

    # ================================================================= flags / properties
    def __getattr__(self, name: str) -> Any:
        cfg = self.__dict__.get("_cfg")
        if cfg is not None and hasattr(cfg, name):
            return getattr(cfg, name)
        raise AttributeError(f"'Trainer' object has no attribute '{name}'")

    # the batch counts live on the loops (Lightning's `loop._max_batches`): one place, read and written through
    @property
    def num_val_batches(self) -> List[float]:
        return self.validate_loop._max_batches

    @num_val_batches.setter
    def num_val_batches(self, value: List[float]) -> None:
        self.validate_loop._max_batches = value

    @property
    def num_test_batches(self) -> List[float]:
        return self.test_loop._max_batches

    @num_test_batches.setter
    def num_test_batches(self, value: List[float]) -> None:
        self.test_loop._max_batches = value

    @property
    def _detect_anomaly(self) -> bool:  # Lightning's attribute name for the flag
        return self._cfg.detect_anomaly

    @property
    def fused(self) -> bool:
        return self._cfg.fused

    @property
    def accumulate_grad_batches(self) -> int:
        return self._cfg.accumulate_grad_batches

    @accumulate_grad_batches.setter
    def accumulate_grad_batches(self, value: int) -> None:
        # callbacks change it per epoch (GradientAccumulationScheduler, SWA's batch-norm epoch); the loop reads it live
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"`trainer.accumulate_grad_batches` must be an int >= 1, got {value!r}.")
        self._cfg.accumulate_grad_batches = value

    @property
    def gradient_clip_val(self) -> Optional[float]:
        return self._cfg.gradient_clip_val

    @property
    def gradient_clip_algorithm(self) -> Optional[str]:
        return self._cfg.gradient_clip_algorithm

    @property
    def max_epochs(self) -> Optional[int]:
        return self._cfg.max_epochs

    @property
    def min_epochs(self) -> Optional[int]:
        return self._cfg.min_epochs

    @property
    def max_steps(self) -> int:
        return self._cfg.max_steps

    def _batch_limit(name: str) -> property:  # noqa: N805 (builds a class attribute)
        """`trainer.limit_{stage}_batches`: read and written on the config the loops read (setup_data reads it
        live, so a limit changed between runs applies to the next one, as in Lightning)."""

        def set_limit(self: "Trainer", value: Union[int, float]) -> None:
            setattr(self._cfg, name, _limit(name, value))

        return property(attrgetter(f"_cfg.{name}"), set_limit, doc=f"The `{name}` flag (settable).")

    limit_train_batches = _batch_limit("limit_train_batches")
    limit_val_batches = _batch_limit("limit_val_batches")
    limit_test_batches = _batch_limit("limit_test_batches")
    limit_predict_batches = _batch_limit("limit_predict_batches")
    del _batch_limit

    @property
    def precision(self) -> str:
        return self._precision.precision  # the `precision` flag's, or that of a precision plugin passed instead

    # THE module and precision plugin of the run are the strategy's (`strategy.connect(model)` at each run's start)
    _module = property(attrgetter("strategy.module"), doc="The connected LightningModule (the strategy's).")
    _precision = property(attrgetter("strategy.precision_plugin"), doc="The run's precision plugin (the strategy's).")

    @property
    def lightning_module(self) -> Optional[LightningModule]:
        return self.strategy.lightning_module

    @property
    def model(self) -> Optional[torch.nn.Module]:
        """The module the loop calls: the LightningModule, or its wrapper (DDP) while a run has it wrapped."""
        return self.strategy.model

    @property
    def current_epoch(self) -> int:
        return self.loop_progress.fit.epoch.current.completed

    @property
    def global_step(self) -> int:
        """Optimizer steps taken: automatic optimization's `optimizer.step` calls, or the manual ones."""
        fit = self.loop_progress.fit
        module = self._module
        if module is None or module.automatic_optimization:
            return fit.optim.optimizer.step.total.completed
        return fit.manual_step.total.completed

    @property
    def _batches_that_stepped(self) -> int:
        """Batches after which the optimizer stepped (the step loggers are given; Lightning's
        `fit_loop.epoch_loop._batches_that_stepped`)."""
        return self.loop_progress.fit.batches_that_stepped

    @_batches_that_stepped.setter
    def _batches_that_stepped(self, value: int) -> None:
        self.loop_progress.fit.batches_that_stepped = value

    @property
    def is_global_zero(self) -> bool:
        return self.strategy.is_global_zero

    @property
    def global_rank(self) -> int:
        return self.strategy.global_rank

    @property
    def local_rank(self) -> int:
        return self.strategy.local_rank

    @property
    def node_rank(self) -> int:
        return self.strategy.node_rank

    @property
    def world_size(self) -> int:
        return self.strategy.world_size

    @property
    def num_devices(self) -> int:
        return len(self.device_ids)

    @property
    def num_nodes(self) -> int:
        return self.strategy.num_nodes

    @property
    def device_ids(self) -> List[int]:
        devices = getattr(self.strategy, "parallel_devices", None) or [self.strategy.root_device]
        return [d.index or i for i, d in enumerate(devices)]  # CPU processes: 0, 1, ... (Lightning's numbering)

    @property
    def root_device(self) -> torch.device:
        return self.strategy.root_device

    @property
    def distributed_sampler_kwargs(self) -> Optional[Dict[str, int]]:
        return self.strategy.distributed_sampler_kwargs

    @property
    def optimizers(self) -> List[torch.optim.Optimizer]:
        """The run's optimizers (the strategy's, as in Lightning)."""
        return self.strategy.optimizers

    @optimizers.setter
    def optimizers(self, optimizers: List[torch.optim.Optimizer]) -> None:
        optimizers = list(optimizers)
        self.strategy.optimizers = optimizers
        self.strategy._lightning_optimizers = [LightningOptimizer._to_lightning_optimizer(o, self) for o in optimizers]

    _lightning_optimizers = property(attrgetter("strategy._lightning_optimizers"),
                                     doc="The LightningOptimizer of each optimizer (the strategy's).")

    @property
    def _checkpoint_connector(self) -> Any:
        """Lightning's private checkpoint connector, as a view (fastlight/trainer/connector_views.py)."""
        from fastlight.trainer.connector_views import CheckpointConnector

        return CheckpointConnector(self)

    @property
    def _data_connector(self) -> Any:
        """Lightning's private data connector, as a view (fastlight/trainer/connector_views.py)."""
        from fastlight.trainer.connector_views import DataConnector

        return DataConnector(self)

    @property
    def _accelerator_connector(self) -> Any:
        """Lightning's private accelerator connector, as a view (fastlight/trainer/connector_views.py)."""
        from fastlight.trainer.connector_views import AcceleratorConnector

        return AcceleratorConnector(self)

    @property
    def precision_plugin(self) -> Any:
        return self.strategy.precision_plugin

    @property
    def accelerator(self) -> Any:
        """The Accelerator of the device kind this run trains on (fastlight.accelerators: CPUAccelerator ...)."""
        from fastlight.accelerators import _accelerator_for

        return _accelerator_for(self._cfg.accelerator)

    @property
    def scaler(self) -> Any:
        return self._precision.scaler

    @property
    def logger(self) -> Any:
        return self.loggers[0] if self.loggers else None

    @logger.setter
    def logger(self, logger: Any) -> None:
        self.loggers = [] if not logger else [logger]

    @property
    def log_dir(self) -> Optional[str]:
        if self.loggers:
            first = self.loggers[0]
            return getattr(first, "log_dir", None) or getattr(first, "save_dir", None)
        return self._cfg.default_root_dir

    @property
    def default_root_dir(self) -> str:
        return self._cfg.default_root_dir

    @property
    def is_last_batch(self) -> bool:
        return self.fit_loop.is_last_batch

    @property
    def validation_has_run(self) -> bool:
        """Whether the fit's latest validation ran batches (Lightning: fit_loop.epoch_loop.val_loop._has_run)."""
        return self.fit_loop.validation_has_run

    @property
    def evaluating(self) -> bool:
        return self.validating or self.testing

    @property
    def interrupted(self) -> bool:
        return self.state.status == "interrupted"

    @property
    def enable_validation(self) -> bool:
        m = self._module
        source = self._val_source
        if m is None or source is None or self._cfg.limit_val_batches == 0:
            return False
        # not overridden, or set to None (on the instance or the class): no validation (Lightning's is_overridden)
        if type(m).validation_step is LightningModule.validation_step or getattr(m, "validation_step", None) is None:
            return False
        kind, owner = source
        return kind == "given" or self._has_hook(owner, "val_dataloader")

    @property
    def ckpt_path(self) -> Optional[str]:
        """The checkpoint the current/last run was restored from (resolved from "last"/"best")."""
        return self._ckpt_path

    @property
    def checkpoint_callback(self) -> Optional[Callback]:
        cbs = self.checkpoint_callbacks
        return cbs[0] if cbs else None

    @property
    def checkpoint_callbacks(self) -> List[Callback]:
        return [c for c in self.callbacks if _is_checkpoint_callback(c)]

    @property
    def early_stopping_callback(self) -> Optional[Callback]:
        cbs = self.early_stopping_callbacks
        return cbs[0] if cbs else None

    @property
    def early_stopping_callbacks(self) -> List[Callback]:
        from fastlight.callbacks.early_stopping import EarlyStopping

        return [c for c in self.callbacks if isinstance(c, EarlyStopping)]

    def init_module(self, empty_init: Optional[bool] = None) -> Any:
        """Context manager: tensors created inside (a model's parameters) go straight to the run's device, in the
        dtype of a "-true" precision; empty_init=True also skips torch.nn.init's initializations (the weights are
        loaded from a checkpoint afterwards), as Lightning's Trainer.init_module does: the strategy decides
        (`strategy.tensor_init_context`)."""
        return self.strategy.tensor_init_context(empty_init=empty_init)

    @property
    def progress_bar_callback(self) -> Optional[Callback]:
        from fastlight.callbacks.progress import ProgressBar

        for c in self.callbacks:
            if isinstance(c, ProgressBar):
                return c
        return None

    @property
    def _results(self) -> Optional[ResultCollection]:
        return self._active_results

    def _results_for_stage(self) -> Optional[ResultCollection]:
        """The collection `trainer.state.stage` names, for logging outside a run (a stage set by hand, as
        Lightning's `trainer._results` follows it); None for predict or no stage."""
        stage = self.state.stage
        if stage is None:
            return None
        return {"train": self._train_results, "sanity_check": self.validate_loop.results,
                "validate": self.validate_loop.results, "test": self.test_loop.results}.get(stage.value)

    @property
    def _logger_connector(self) -> MetricsHub:
        """Lightning's logger connector: fastlight's MetricsHub."""
        return self._hub

    @property
    def callback_metrics(self) -> Dict[str, Tensor]:
        return self._hub.callback_metrics(self._active_results)

    @property
    def logged_metrics(self) -> Dict[str, Tensor]:
        return self._hub.logged_metrics(self._active_results)

    @property
    def progress_bar_metrics(self) -> Dict[str, float]:
        return self._hub.progress_bar_metrics(self._active_results)

    @property
    def lr_schedulers(self) -> list:
        return [c.scheduler for c in self.lr_scheduler_configs]

    @property
    def estimated_stepping_batches(self) -> Union[int, float]:
        """Optimizer steps the whole fit will take (Lightning's estimate; loads the train dataloader if needed)."""
        cfg = self._cfg
        max_epochs = cfg.max_epochs
        if max_epochs == -1:
            return float("inf") if cfg.max_steps == -1 else cfg.max_steps
        if self._train_source is None:  # no train loader to count (nothing attached yet): as Lightning answers
            return cfg.max_steps
        if max_epochs is None:  # attached but the fit has not resolved it yet: the fit's default
            max_epochs = 1000 if cfg.max_steps == -1 and cfg.max_time is None else -1
            if max_epochs == -1:
                return float("inf") if cfg.max_steps == -1 else cfg.max_steps
        if self.train_dataloader is None:
            rank_zero_info("Loading `train_dataloader` to estimate number of stepping batches.")
            self.fit_loop.setup_data()
        total = self.num_training_batches
        if total == float("inf"):
            return cfg.max_steps
        est = math.ceil(total / cfg.accumulate_grad_batches) * max(max_epochs, 1)
        return min(est, cfg.max_steps) if cfg.max_steps != -1 else est

    # ================================================================= setup helpers
    @staticmethod
    def _apply_determinism(cfg: Any) -> None:
        if cfg.deterministic is not None:
            warn_only = cfg.deterministic == "warn"
            torch.use_deterministic_algorithms(bool(cfg.deterministic), warn_only=warn_only)
            if cfg.deterministic:
                os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        if cfg.benchmark is not None and torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = cfg.benchmark
        elif cfg.deterministic and torch.backends.cudnn.is_available():
            torch.backends.cudnn.benchmark = False

    def _configure_loggers(self, logger: Any) -> list:
        cfg = self._cfg
        if cfg.barebones:
            return []
        if cfg.fast_dev_run:  # the module's logging calls still run, into Lightning's no-op logger
            from fastlight.loggers.logger import DummyLogger

            return [DummyLogger()] if logger is not False and logger != [] else []
        if logger is None or logger is True:
            # Lightning's default: TensorBoard when its package is importable, else CSV (and say so)
            from fastlight.loggers.tensorboard import TensorBoardLogger, _tensorboard_available

            if _tensorboard_available():
                return [TensorBoardLogger(save_dir=cfg.default_root_dir)]
            from fastlight.loggers.csv_logs import CSVLogger

            rank_zero_warn(
                "The `tensorboard` package is not installed, so the default logger (`logger=True`) is CSVLogger:"
                f" metrics go to {os.path.join(cfg.default_root_dir, 'lightning_logs')}/version_N/metrics.csv."
                " Install it (`pip install tensorboard`) to get TensorBoard logs by default, or pass"
                " `logger=CSVLogger(...)` to choose CSV explicitly and silence this warning.",
                stacklevel=5,  # the user's Trainer(...) line
            )
            return [CSVLogger(save_dir=cfg.default_root_dir)]
        if logger is False:
            return []
        if isinstance(logger, Iterable) and not isinstance(logger, (str, bytes)):
            return list(logger)
        return [logger]

    def _configure_callbacks(self, callbacks: Any) -> List[Callback]:
        cfg = self._cfg
        if callbacks is None:
            cbs: List[Callback] = []
        elif isinstance(callbacks, Callback):
            cbs = [callbacks]
        else:
            cbs = list(callbacks)
        for cb in cbs:
            if not isinstance(cb, Callback):
                raise ConfigError(f"`Trainer(callbacks=...)` got {cb!r}, which is not a `Callback`.")
        # Lightning's defaults, in its order: checkpoint, progress bar, model summary (checkpoints move last below)
        from fastlight.callbacks import ModelCheckpoint, ModelSummary, ProgressBar, TQDMProgressBar

        if any(_is_checkpoint_callback(c) for c in cbs) and not cfg.enable_checkpointing:
            raise ConfigError(
                "Trainer was configured with `enable_checkpointing=False` but found `ModelCheckpoint` in callbacks list."
            )
        if cfg.enable_checkpointing and not any(_is_checkpoint_callback(c) for c in cbs):
            cbs.append(ModelCheckpoint())
        bars = [c for c in cbs if isinstance(c, ProgressBar)]
        if len(bars) > 1:
            raise ConfigError(
                "You added multiple progress bar callbacks to the Trainer, but currently only one progress bar is"
                " supported."
            )
        if bars and not cfg.enable_progress_bar:
            raise ConfigError(
                f"Trainer was configured with `enable_progress_bar=False` but found `{type(bars[0]).__name__}` in"
                " callbacks list."
            )
        if cfg.enable_progress_bar and not bars:
            cbs.append(TQDMProgressBar())
        if cfg.enable_model_summary and not any(isinstance(c, ModelSummary) for c in cbs):
            # Lightning 2.6 draws the summary with rich whenever rich is installed; fastlight keeps the plain one
            # (its cheap default, like its TQDM bar) unless the user chose rich's bar
            from fastlight.callbacks import RichProgressBar, RichModelSummary

            rich_bar = any(isinstance(c, RichProgressBar) for c in cbs)
            cbs.append(RichModelSummary() if rich_bar else ModelSummary())
        return _reorder_callbacks(cbs)

    def _resolve_hooks(self) -> None:
        """Once per run: which callbacks override which hook, which no-op module hooks are overridden."""
        table: Dict[str, list] = {}
        for cb in self.callbacks:
            cls = type(cb)
            for name in _CALLBACK_HOOKS:
                impl = getattr(cls, name, None)
                if impl is not None and (impl is not getattr(Callback, name) or name in vars(cb)):
                    table.setdefault(name, []).append(getattr(cb, name))
        profiler = self.profiler
        if profiler.profiling:  # time each callback hook under Lightning's action name; nothing added otherwise
            table = {k: [profiler.wrap(f"[Callback]{fn.__self__.state_key}.{k}", fn) for fn in v]
                     for k, v in table.items()}
        self._cb_hooks = {k: tuple(v) for k, v in table.items()}
        # epoch-end monitoring callbacks (checkpoint, early stopping) run after the module's on_train_epoch_end
        epoch_end = [cb for cb in self.callbacks
                     if type(cb).on_train_epoch_end is not Callback.on_train_epoch_end
                     or "on_train_epoch_end" in vars(cb)]  # set on the instance
        timed = (lambda cb: profiler.wrap(f"[Callback]{cb.state_key}.on_train_epoch_end", cb.on_train_epoch_end)) \
            if profiler.profiling else (lambda cb: cb.on_train_epoch_end)
        self._cb_hooks["on_train_epoch_end"] = tuple(timed(cb) for cb in epoch_end if not _is_monitoring_callback(cb))
        self._cb_hooks["on_train_epoch_end:monitoring"] = tuple(
            timed(cb) for cb in epoch_end if _is_monitoring_callback(cb))
        module = self._module
        cls = type(module)
        # configure_gradient_clipping's default does nothing without a clip value: skip it then
        self._clipping_active = bool(self._cfg.gradient_clip_val) or (
            type(module).configure_gradient_clipping is not LightningModule.configure_gradient_clipping
            or "configure_gradient_clipping" in vars(module))  # set on the instance (a wrapper that records it)
        self._module_skip = frozenset(
            name for name in _NOOP_MODULE_HOOKS
            if getattr(cls, name, None) is getattr(LightningModule, name) and name not in vars(module)
        )
        # hooks someone listens to: a callback overrides it, or the module overrides it (for the hooks with a
        # default body: optimizer_zero_grad, backward). The step loop skips the dispatch call for the others.
        overridden = {
            name for name in _NOOP_MODULE_HOOKS | {"optimizer_zero_grad", "backward"}
            if getattr(cls, name, None) is not getattr(LightningModule, name) or name in vars(module)
        }
        self._active_hooks = frozenset(overridden | {k.split(":")[0] for k, v in self._cb_hooks.items() if v})

    # ================================================================= hook dispatch
    def _call_callbacks(self, name: str, *args: Any, **kwargs: Any) -> None:
        fns = self._cb_hooks.get(name)
        if not fns:
            return
        module = self.strategy.module  # (not the `_module` property: one attribute read less per hook)
        prev = module._current_fx_name
        module.__dict__["_current_fx_name"] = name.split(":")[0]  # plain dict write: nn.Module.__setattr__ is slow
        for fn in fns:
            fn(self, module, *args, **kwargs)
        module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow

    def _call_module(self, name: str, *args: Any, **kwargs: Any) -> Any:
        if name in self._module_skip:
            return None
        module = self.strategy.module  # (not the `_module` property: one attribute read less per hook)
        prev = module._current_fx_name
        module.__dict__["_current_fx_name"] = name  # plain dict write: nn.Module.__setattr__ is slow
        try:
            return getattr(module, name)(*args, **kwargs)
        finally:
            module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow

    def _call_module_profiled(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """_call_module timed by the profiler (installed over _call_module for runs with a recording profiler)."""
        if name in self._module_skip:
            return None
        with self.profiler.profile(f"[LightningModule]{type(self._module).__name__}.{name}"):
            return Trainer._call_module(self, name, *args, **kwargs)

    def _call_datamodule(self, name: str, *args: Any, **kwargs: Any) -> Any:
        """A hook of the attached datamodule, timed by the profiler as `[LightningDataModule]<Class>.<hook>`."""
        dm = self.datamodule
        if dm is None:
            return None
        with self.profiler.profile(f"[LightningDataModule]{type(dm).__name__}.{name}"):
            return getattr(dm, name)(*args, **kwargs)

    # ================================================================= self.log
    def _log(self, module: LightningModule, name: str, value: Any, prog_bar: bool, logger: Optional[bool],
             on_step: Optional[bool], on_epoch: Optional[bool], reduce_fx: Any, enable_graph: bool,
             sync_dist: bool, add_dataloader_idx: bool, batch_size: Optional[int], sync_dist_group: Any = None,
             rank_zero_only: bool = False) -> None:
        if self._cfg.barebones:
            rank_zero_warn(
                "You are trying to `self.log()` but `Trainer(barebones=True)` is configured."
                " Logging can impact raw speed so it is disabled under this setting."
            )
            return
        results = self._active_results
        if results is None:
            results = self._active_results = self._results_for_stage()
        if results is None:
            raise LoggingError(
                "You are trying to `self.log()` but the loop's result collection is not registered"
                " yet. This is most likely because you are trying to log in a `predict` hook,"
                " but it doesn't support logging"
            )
        fx = module._current_fx_name
        if fx is None:
            raise LoggingError("You are trying to `self.log()` but it is not managed by the `Trainer` control flow")
        if batch_size is None and self.training and self.fit_loop._step_fetches:  # no batch to take the size from
            raise MisconfigurationException(
                f"`self.log({name!r}, ...)` needs `batch_size=...` when `training_step` takes `dataloader_iter`: the"
                " loop does not see the batches the step fetches, so it cannot tell their size."
            )
        # the argument checks depend only on these: resolved once per distinct call site
        try:
            key = (fx, name, on_step, on_epoch, reduce_fx, add_dataloader_idx, sync_dist, sync_dist_group,
                   rank_zero_only)
            resolved = self._log_arg_cache.get(key)
        except TypeError:  # unhashable reduce_fx
            key, resolved = None, None
        if resolved is None:
            on_step, on_epoch = resolve_log_levels(fx, on_step, on_epoch)
            if add_dataloader_idx and "/dataloader_idx_" in name:
                raise LoggingError(
                    f"You called `self.log` with the key `{name}`"
                    " but it should not contain information about `dataloader_idx` when `add_dataloader_idx=True`"
                )
            # sync_dist: values are reduced over the ranks through the strategy (none to reduce on one process)
            sync = (self.strategy.reduce, sync_dist_group) if (
                sync_dist and not rank_zero_only and self.strategy.is_distributed) else None
            resolved = (on_step, on_epoch, parse_reduce_fx(reduce_fx), sync)
            if key is not None:
                self._log_arg_cache[key] = resolved
        on_step, on_epoch, reduce, sync = resolved
        hub = self._hub
        if hub.current_fx != fx and hub.first_loop_iter is not False:  # hub.should_reset_tensors(fx), inlined
            hub.reset_fx(results, fx)
        hub.current_fx = fx
        if logger is None:
            logger = True
        elif logger and not self.loggers:  # asked for explicitly (Lightning warns only then)
            rank_zero_warn(
                f"You called `self.log({name!r}, ..., logger=True)` but have no logger configured: give the Trainer"
                " one (`Trainer(logger=...)`) or leave out `logger=True`."
            )
        if not isinstance(value, (Tensor, float, int)) and is_metric_object(value):
            # a torchmetrics Metric: it syncs its own states across ranks, so sync_dist does not apply
            results.log_metric_object(fx, name, value, prog_bar, logger, on_step, on_epoch, reduce, enable_graph,
                                      add_dataloader_idx)
            return
        if isinstance(value, Tensor):
            # a copy: the caller may change the tensor in place later (Lightning clones too)
            value = value.detach().clone() if not enable_graph else value.clone()
        else:
            value = torch.tensor(value, device=module.device, dtype=_default_float())
        if value.dim():
            value = value.squeeze()
        dtype = value.dtype
        if dtype is not torch.float32 and dtype is not torch.float64:
            if not value.is_floating_point():
                rank_zero_warn(
                    f"You called `self.log({name!r}, ...)` in your `{fx}` but the value needs to"
                    " be floating to be reduced. Converting it to the default dtype."
                )
            value = value.to(_default_float())
        results.log(fx, name, value, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx,
                    batch_size, sync)

    # ================================================================= public entry points
    def fit(self, model: LightningModule, train_dataloaders: Any = None, val_dataloaders: Any = None,
            datamodule: Optional[LightningDataModule] = None, ckpt_path: Optional[str] = None,
            weights_only: Optional[bool] = None) -> None:
        if isinstance(train_dataloaders, LightningDataModule):
            datamodule, train_dataloaders = train_dataloaders, None
        if datamodule is not None and (train_dataloaders is not None or val_dataloaders is not None):
            raise MisconfigurationError(
                "You cannot pass `train_dataloader` or `val_dataloaders` to `trainer.fit(datamodule=...)`"
            )
        model = unwrap_compiled(model)  # trainer.fit(torch.compile(model)): the module, its steps compiled
        self._attach(model, datamodule, "fit", train=train_dataloaders, val=val_dataloaders)
        self._launch(model, "fit", self._select_ckpt_path("fit", ckpt_path, True), weights_only)

    def validate(self, model: Optional[LightningModule] = None, dataloaders: Any = None,
                 ckpt_path: Optional[str] = None, verbose: bool = True,
                 datamodule: Optional[LightningDataModule] = None,
                 weights_only: Optional[bool] = None) -> List[Dict[str, float]]:
        return self._evaluate(model, dataloaders, ckpt_path, verbose, datamodule, "validate", weights_only)

    def test(self, model: Optional[LightningModule] = None, dataloaders: Any = None,
             ckpt_path: Optional[str] = None, verbose: bool = True,
             datamodule: Optional[LightningDataModule] = None,
             weights_only: Optional[bool] = None) -> List[Dict[str, float]]:
        return self._evaluate(model, dataloaders, ckpt_path, verbose, datamodule, "test", weights_only)

    def _evaluate(self, model, dataloaders, ckpt_path, verbose, datamodule, fn, weights_only=None):
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        if dataloaders is not None and datamodule is not None:
            raise MisconfigurationError(f"You cannot pass both `trainer.{fn}(dataloaders=..., datamodule=...)`")
        model_provided = model is not None
        model = self._resolve_model(model, fn)
        loop = self.validate_loop if fn == "validate" else self.test_loop
        loop.verbose = verbose
        model = unwrap_compiled(model)
        self._attach(model, datamodule, fn, **{"val" if fn == "validate" else "test": dataloaders})
        return self._launch(model, fn, self._select_ckpt_path(fn, ckpt_path, model_provided), weights_only)

    def predict(self, model: Optional[LightningModule] = None, dataloaders: Any = None,
                datamodule: Optional[LightningDataModule] = None, return_predictions: Optional[bool] = None,
                ckpt_path: Optional[str] = None, weights_only: Optional[bool] = None) -> Optional[list]:
        if isinstance(dataloaders, LightningDataModule):
            datamodule, dataloaders = dataloaders, None
        if dataloaders is not None and datamodule is not None:
            raise MisconfigurationError("You cannot pass both `trainer.predict(dataloaders=..., datamodule=...)`")
        model_provided = model is not None
        model = self._resolve_model(model, "predict")
        self.predict_loop.return_predictions = return_predictions  # None: decided where the ranks run (_run)
        model = unwrap_compiled(model)
        self._attach(model, datamodule, "predict", predict=dataloaders)
        return self._launch(model, "predict", self._select_ckpt_path("predict", ckpt_path, model_provided),
                         weights_only)

    def _resolve_model(self, model: Optional[LightningModule], fn: str) -> LightningModule:
        if model is None:
            if self._module is None:
                raise TypeError(f"`Trainer.{fn}()` requires a `LightningModule` when it hasn't been passed in a"
                                " previous run")
            return self._module
        return model

    def _attach(self, model: Any, datamodule: Any, fn: str, **sources: Any) -> None:
        if not isinstance(model, LightningModule):
            raise TypeError(f"`Trainer.{fn}(model=...)`: `model` must be a `LightningModule` or"
                            f" `torch._dynamo.OptimizedModule`, got `{type(model).__qualname__}`")
        if datamodule is not None and not isinstance(datamodule, LightningDataModule):
            raise TypeError(f"`datamodule` must be a `LightningDataModule`, got {type(datamodule).__qualname__}")
        self.state.fn = fn
        self.datamodule = datamodule
        if datamodule is not None:
            datamodule.trainer = self
        stages = {"fit": ("train", "val"), "validate": ("val",)}.get(fn, (fn,))
        self._attach_sources(datamodule if datamodule is not None else model, stages, sources)

    def _attach_sources(self, owner: Any, stages: Iterable[str], given: Dict[str, Any]) -> None:
        """Where each stage's dataloaders come from: a dataloader in `given` (by stage: "train", "val", "test",
        "predict"), else for `stages` the hooks of `owner` (the datamodule, else the module). The loaders of those
        stages are requested again when next needed."""
        for stage in ("train", "val", "test", "predict"):
            loader = given.get(stage)
            if loader is not None:
                setattr(self, f"_{stage}_source", ("given", loader))
            elif stage in stages:
                setattr(self, f"_{stage}_source", ("hook", owner))
        if "train" in stages:
            self.train_dataloader = None
            self.fit_loop.reset_data()
        if "val" in stages:
            self.val_dataloaders = None
            self.validate_loop.reset_data()
        if "test" in stages:
            self.test_dataloaders = None
            self.test_loop.reset_data()

    # ================================================================= data
    def _has_hook(self, owner: Any, name: str) -> bool:
        if name in getattr(owner, "__dict__", ()):  # set on the instance (LightningDataModule.from_datasets does)
            return owner.__dict__[name] is not None  # `model.val_dataloader = None` turns the hook off (Lightning)
        if isinstance(owner, LightningModule):
            return getattr(type(owner), name) is not getattr(LightningModule, name)
        if isinstance(owner, LightningDataModule):
            return getattr(type(owner), name) is not getattr(LightningDataModule, name)
        return hasattr(owner, name)

    def _request_dataloader(self, stage: str) -> Any:
        """The dataloader(s) for stage "train"/"val"/"test"/"predict", calling the `*_dataloader` hook if needed."""
        source = getattr(self, f"_{stage}_source")
        hook = f"{stage}_dataloader"
        if source is None:
            return None
        kind, owner = source
        if kind == "given":
            return self._process_dataloader(owner, stage)
        if not self._has_hook(owner, hook):
            if owner is self._module and self.datamodule is None:
                return None
            return None
        if isinstance(owner, LightningModule):
            loader = self._call_module(hook)
        else:
            loader = getattr(owner, hook)()
        return self._process_dataloader(loader, stage)

    def _process_dataloader(self, loader: Any, stage: str) -> Any:
        """The strategy injects a DistributedSampler (distributed runs, use_distributed_sampler=True), and the worker
        seeding of `seed_everything(workers=True)` is added, into each loader of a list/tuple/dict or CombinedLoader."""
        cfg = self._cfg

        def process(dl: Any) -> Any:
            _worker_check(dl, f"{stage}_dataloader", self.num_devices, cfg.reload_dataloaders_every_n_epochs)
            dl = self.strategy.process_dataloader(
                dl, stage, use_distributed_sampler=cfg.use_distributed_sampler, overfit_batches=cfg.overfit_batches
            )
            _auto_add_worker_init_fn(dl, self.global_rank)  # seed_everything(workers=True): seeds per worker
            return dl

        if isinstance(loader, (list, tuple, dict, CombinedLoader)):
            return _map_iterables(process, loader)
        return process(loader)

    def _batch_to_device(self, batch: Any, dataloader_idx: int) -> Any:
        """Precision input conversion, the transfer hooks, and the move to this rank's device."""
        batch = self._precision.convert_input(batch)
        if self._fast_transfer:
            return batch
        batch = self._call_transfer_hook("on_before_batch_transfer", batch, dataloader_idx)
        batch = self._call_transfer_hook("transfer_batch_to_device", batch, self.strategy.root_device, dataloader_idx)
        batch = self._call_transfer_hook("on_after_batch_transfer", batch, dataloader_idx)
        return batch

    def _call_transfer_hook(self, name: str, *args: Any) -> Any:
        owner = self._transfer_owners.get(name)
        if owner is not None and owner is self.datamodule:
            return getattr(owner, name)(*args)
        return self._call_module(name, *args)

    # ================================================================= the run
    def _launch(self, model: LightningModule, fn: str, *run_args: Any) -> Any:
        """Run `fn` in every rank: here (one device; or torchrun/SLURM/our re-executed script, where the launcher
        only starts the other local ranks, then runs it here too), or in spawned processes (ddp_spawn/ddp_fork),
        whose rank 0 sends its results back to this process."""
        launcher = self.strategy.launcher
        if launcher is None:
            return self._run(model, fn, *run_args)
        from fastlight.strategies import MultiProcessingLauncher

        if not isinstance(launcher, MultiProcessingLauncher):
            return launcher.launch(self._run, model, fn, *run_args, trainer=self)
        try:
            outcome = launcher.launch(self._run_spawned_rank, model, fn, *run_args, trainer=self)
        except BaseException as exc:
            self._on_spawned_exception(model, exc)
            raise
        return self._recover_spawned_results(model, outcome)

    def _on_spawned_exception(self, model: LightningModule, exc: BaseException) -> None:
        """A spawned rank failed (its copies of the callbacks and module ran their on_exception there): this
        process's callbacks, datamodule, strategy and loggers hear of it too, as under Lightning, whose calling
        process handles the exception the launcher re-raises like any other (its module copy is not called)."""
        self.state.status = "interrupted"
        for callback in self.callbacks:
            callback.on_exception(self, model, exc)
        if self.datamodule is not None:
            self.datamodule.on_exception(exc)
        self.strategy.on_exception(exc)
        for logger in self.loggers:
            try:
                logger.finalize("failed")
            except Exception:
                pass

    def _resolve_return_predictions(self) -> None:
        """`predict(return_predictions=None)` returns them where the predicting process is this one; spawned
        processes cannot hand them back (each holds its share of the data), so there the default is False and True
        is refused, in the rank that runs (as Lightning does)."""
        from fastlight.strategies import MultiProcessingLauncher

        spawned = isinstance(self.strategy.launcher, MultiProcessingLauncher)
        loop = self.predict_loop
        if loop.return_predictions is None:
            loop.return_predictions = not spawned
        elif loop.return_predictions and spawned:
            raise MisconfigurationException(
                "`return_predictions` should be set to `False` when using the strategies that spawn processes:"
                " each process predicts its own share of the data."
                " Collect them with a `BasePredictionWriter` callback, or use `strategy='ddp'`."
            )

    def _run_spawned_rank(self, model: LightningModule, fn: str, *run_args: Any) -> Optional[Dict[str, Any]]:
        """In a spawned rank: run, then (rank 0) what the calling process needs (Lightning's _WorkerOutput)."""
        result = self._run(model, fn, *run_args)
        if not self.is_global_zero:
            return None
        ckpt = self.checkpoint_callback
        return {
            "result": result,
            "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
            "callback_metrics": dict(self.callback_metrics),
            "logged_metrics": dict(self.logged_metrics),
            "status": self.state.status,
            "fit_progress": self.loop_progress.fit.state_dict(),
            "best_model_path": getattr(ckpt, "best_model_path", None),
        }

    def _recover_spawned_results(self, model: LightningModule, outcome: Optional[Dict[str, Any]]) -> Any:
        """In the calling process: rank 0's final weights, metrics and progress, as if it had run here."""
        self.strategy.connect(model)
        model.trainer = self  # (the nested LightningModules too)
        if outcome is None:
            return None
        model.load_state_dict(outcome["state_dict"])
        self._hub.restore(outcome["callback_metrics"], outcome["logged_metrics"])
        self.state.status = outcome["status"]
        self.loop_progress.fit.load_state_dict(outcome["fit_progress"])  # current_epoch, global_step
        ckpt = self.checkpoint_callback
        if ckpt is not None and outcome["best_model_path"] is not None and hasattr(ckpt, "best_model_path"):
            ckpt.best_model_path = outcome["best_model_path"]
        return outcome["result"]

    def _run(self, model: LightningModule, fn: str, ckpt_path: Optional[str],
             weights_only: Optional[bool] = None) -> Any:
        if fn == "predict":
            self._resolve_return_predictions()
        if fn == "fit":  # Lightning's defaults for unset epoch limits, decided when a fit starts
            from fastlight.callbacks.timer import Timer

            has_timer = self._cfg.max_time is not None or any(isinstance(cb, Timer) for cb in self.callbacks)
            resolve_loop_limits(self._cfg, has_timer)
        if hasattr(model, "hparams"):  # what a checkpoint cannot pickle is dropped, with a warning (as Lightning)
            clean_namespace(model.hparams)
        self.strategy.connect(model)
        model.trainer = self  # (the nested LightningModules too)
        self.state.status = "running"
        self.should_stop = False
        # the loop that is running owns the results `self.log` writes to (predict has none)
        self.training = fn == "fit"
        self.validating, self.testing, self.predicting = fn == "validate", fn == "test", fn == "predict"
        if fn != "fit":  # the stage is known from the start: setup() can read it (Lightning sets it here too)
            self.state.stage = fn
        self._active_results = {"fit": self._train_results, "validate": self.validate_loop.results,
                                "test": self.test_loop.results}.get(fn)
        self._merge_model_callbacks(model)
        for callback in self.callbacks:  # `self.log(...)` inside a callback hook logs through the module
            callback.log, callback.log_dict = model.log, model.log_dict
        self._resolve_hooks()
        if self.profiler.profiling:  # module hooks timed too (an instance attribute: no check per call otherwise)
            self.__dict__["_call_module"] = self._call_module_profiled
        else:
            self.__dict__.pop("_call_module", None)
        self._verify_loop_configuration(model, fn)
        dm = self.datamodule
        strategy = self.strategy
        device = strategy.root_device
        # whose transfer hooks run (Lightning's rule, with its warnings), decided once per run
        self._transfer_owners = {h: transfer_hook_owner(model, dm, h, warn=True) for h in TRANSFER_HOOKS}
        self._default_transfer = all(not self._has_hook(owner, h) for h, owner in self._transfer_owners.items())
        self._fast_transfer = device.type == "cpu" and self._default_transfer
        self._signals.install(fn)
        try:
            strategy.setup_environment()  # process group, device, ranks: before anything touches them
            self.accelerator.setup(self)  # Lightning's per-device info lines (CUDA: visible devices, Tensor Cores)
            self.profiler._lightning_module = model  # PyTorchProfiler labels the module's forward calls
            self.profiler.setup(stage=fn, local_rank=self.local_rank if self.world_size > 1 else None,
                                log_dir=self.log_dir)
            self._prepare_data()
            # setup: the module's device is faked so `setup` can use it; loggers create their experiment
            model._device = device
            for logger in self.loggers:
                if hasattr(logger, "experiment"):
                    _ = logger.experiment
            if dm is not None:
                self._call_datamodule("setup", stage=self.state.fn)
            self._call_callbacks("setup", stage=self.state.fn)
            self._call_module("setup", stage=self.state.fn)
            self._call_module("configure_model")
            self._restore_checkpoint(ckpt_path, before_setup=True, weights_only=weights_only)
            self._hub.reset_results(self._active_results)
            self._hub.reset_metrics()
            self._setup_strategy(model, fn)
            if fn == "fit":
                self._call_callbacks("on_fit_start")
                self._call_module("on_fit_start")
            if self.enable_autolog_hparams:
                self._log_hyperparams(model)
            self._restore_checkpoint(ckpt_path, before_setup=False)
            result = self._run_stage(fn)
            self._teardown()
            if fn == "fit":
                self._call_callbacks("on_fit_end")
                self._call_module("on_fit_end")
            if dm is not None:
                self._call_datamodule("teardown", stage=self.state.fn)
            self._call_callbacks("teardown", stage=self.state.fn)
            self._call_module("teardown", stage=self.state.fn)
            self.profiler.describe()  # the stage's report (a PassThroughProfiler has none)
            for logger in self.loggers:
                logger.finalize("success")
            self.state.status = "finished"
            self.state.stage = None
            return result
        except _TunerExitException:
            # a tuner run through `Tuner` is done: end the call as Lightning does (teardown hooks, no fit/stage end)
            if dm is not None:
                self._call_datamodule("teardown", stage=self.state.fn)
            self._call_callbacks("teardown", stage=self.state.fn)
            self._call_module("teardown", stage=self.state.fn)
            for logger in self.loggers:
                logger.finalize("success")
            self.profiler.describe()
            self._teardown()
            self.state.status = "finished"
            self.state.stage = None
            return None
        except BaseException as exc:
            self.state.status = "interrupted"
            interrupted = isinstance(exc, KeyboardInterrupt)
            # stopped by a signal at a batch boundary: every rank is here together (signals.py)
            together = self.fit_loop._stopping_at_boundary
            launcher = strategy.launcher
            kills = launcher is not None and getattr(launcher, "launches_processes", False)
            if kills and together and getattr(launcher, "_observer", None) is not None:
                launcher._observer.finished.set()  # the other ranks stop too, on purpose: not a failure to report
            if interrupted:
                rank_zero_info("\nDetected KeyboardInterrupt, attempting graceful shutdown ...")
                self._signals.ignore_sigint()  # a user may press Ctrl-C many times
                if kills and not together:
                    launcher.kill(signal.SIGKILL)  # the other ranks would wait for this one in their next collective
            self._call_callbacks("on_exception", exc)
            self._call_module("on_exception", exc) if hasattr(model, "on_exception") else None
            if dm is not None:
                dm.on_exception(exc)
            strategy.on_exception(exc)
            for logger in self.loggers:
                try:
                    logger.finalize("failed")
                except Exception:
                    pass
            try:
                self._teardown()  # as Lightning does after an exception; never hides the exception itself
            except Exception as teardown_error:
                rank_zero_warn(f"Teardown after {type(exc).__name__} failed: {teardown_error!r}")
            if interrupted:
                if kills and together:
                    launcher.wait(timeout=60)  # they shut down as this rank did
                    launcher.kill(signal.SIGKILL)
                raise SystemExit(1) from None  # Lightning's exit: one line above, no traceback
            raise
        finally:
            self._signals.restore()
            self.training = self.validating = self.testing = self.predicting = self.sanity_checking = False
            self._active_results = None

    def _prepare_data(self) -> None:
        """prepare_data of the datamodule, then of the module: once per node (local rank 0), or once in all (global
        rank 0) for an owner with prepare_data_per_node=False, the other ranks waiting, as in Lightning."""
        local_zero = self.local_rank == 0
        global_zero = local_zero and self.node_rank == 0
        strategy = self.strategy
        for owner in (self.datamodule, self.lightning_module):
            if owner is None or not self._has_hook(owner, "prepare_data"):
                continue
            if local_zero if getattr(owner, "prepare_data_per_node", True) else global_zero:
                if owner is self.datamodule:
                    self._call_datamodule("prepare_data")
                else:
                    self._call_module("prepare_data")
            if strategy.is_distributed:
                strategy.barrier("prepare_data")

    def _restore_checkpoint(self, ckpt_path: Optional[str], before_setup: bool,
                            weights_only: Optional[bool] = None) -> None:
        """Restore from `ckpt_path` at Lightning's two points: the file, the module, datamodule and callbacks after
        the setup hooks (`before_setup=True`); the AMP scaler, loop counters, optimizers and schedulers once they
        exist, after `on_fit_start` (`before_setup=False`). The fit loop continues from the restored counters."""
        from fastlight.trainer import checkpoint_layout

        self._ckpt_path = ckpt_path
        if ckpt_path is None:
            return
        if before_setup:
            rank_zero_info(f"Restoring states from the checkpoint path at {ckpt_path}")
            checkpoint = self._read_checkpoint(ckpt_path, weights_only)
            self._loaded_checkpoint_extras = checkpoint_layout.pop_fastlight_entries(checkpoint)
            self._loaded_checkpoint = checkpoint
            checkpoint_layout.restore_modules_and_callbacks(self, checkpoint, source=str(ckpt_path))
            return
        checkpoint = self._loaded_checkpoint
        extras, self._loaded_checkpoint_extras = self._loaded_checkpoint_extras, {}
        self._loaded_checkpoint = None  # the dict is not needed once restored: free its memory
        fn = self.state.fn
        checkpoint_layout.restore_training_state(self, checkpoint, stage=fn)
        if fn == "fit":
            self.fit_loop.on_restored({**checkpoint, **extras}, str(ckpt_path))
            rank_zero_info(f"Restored all states from the checkpoint at {ckpt_path}")
        else:
            rank_zero_info(f"Loaded model weights from the checkpoint at {ckpt_path}")

    def _read_checkpoint(self, path: Any, weights_only: Optional[bool] = None) -> Dict[str, Any]:
        """The checkpoint file at `path`, onto the CPU, through the trainer's CheckpointIO (TorchCheckpointIO if none)."""
        from fastlight.utilities.checkpoint_io import load_checkpoint

        io = self.checkpoint_io
        if io is not None:
            return io.load_checkpoint(path, map_location="cpu", weights_only=weights_only)
        return load_checkpoint(path, map_location="cpu", weights_only=weights_only)

    def _select_ckpt_path(self, fn: str, ckpt_path: Optional[Any], model_provided: bool,
                          model_connected: bool = True) -> Optional[str]:
        """`ckpt_path` as a file path: "best" and "last" resolved, validate/test/predict without a model use the
        best checkpoint of the previous fit, and a fit with an OnExceptionCheckpoint continues from the latest of
        its file and the last checkpoints (Lightning's rules and messages)."""
        from fastlight.callbacks.on_exception_checkpoint import OnExceptionCheckpoint

        fn = getattr(fn, "value", fn)  # a TrainerFn
        if ckpt_path is not None and not isinstance(ckpt_path, (str, os.PathLike)):
            raise TypeError(f"`.{fn}(ckpt_path=...)` must be a path, 'best', 'last' or None, got {ckpt_path!r}")
        on_exception = [cb for cb in self.callbacks if isinstance(cb, OnExceptionCheckpoint)]
        if ckpt_path is None and on_exception and self.state.fn == "fit":
            ckpt_path = "last"
            rank_zero_warn(
                f"`.{fn}(ckpt_path=None)` was called without a model. The last model of the previous `fit` call will"
                f" be used. You can pass `{fn}(ckpt_path='best')` to use the best model or `{fn}(ckpt_path='last')`"
                " to use the last model. If you pass a value, this warning will be silenced."
            )
        if model_provided and ckpt_path is None:
            return None
        if model_connected and ckpt_path is None:
            ckpt_path = "best"
            tip = (" There is also an on-exception checkpoint available, however it is used by default only when"
                   " fitting.") if on_exception else ""
            rank_zero_warn(
                f"`.{fn}(ckpt_path=None)` was called without a model. The best model of the previous `fit` call will"
                f" be used.{tip} You can pass `.{fn}(ckpt_path='best')` to use the best model or"
                f" `.{fn}(ckpt_path='last')` to use the last model. If you pass a value, this warning will be silenced."
            )
        if ckpt_path == "best":
            if len(self.checkpoint_callbacks) > 1:
                rank_zero_warn(
                    f'`.{fn}(ckpt_path="best")` is called with Trainer configured with multiple `ModelCheckpoint`'
                    " callbacks. It will use the best checkpoint path from first checkpoint callback."
                )
            callback = self.checkpoint_callback
            if callback is None:
                raise ValueError(f'`.{fn}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured.')
            if not getattr(callback, "best_model_path", None):
                if self._cfg.fast_dev_run:
                    raise ValueError(
                        f'You cannot execute `.{fn}(ckpt_path="best")` with `fast_dev_run=True`. Please pass an'
                        f" exact checkpoint path to `.{fn}(ckpt_path=...)`"
                    )
                raise ValueError(
                    f'`.{fn}(ckpt_path="best")` is set but `ModelCheckpoint` is not configured to save the best'
                    " model."
                )
            return callback.best_model_path
        if ckpt_path == "last":
            candidates = {cb.ckpt_path for cb in on_exception}
            for callback in self.checkpoint_callbacks:
                find = getattr(callback, "_find_last_checkpoints", None)
                if find is not None:
                    candidates |= find(self)
            existing = {p: os.path.getmtime(p) for p in candidates if os.path.exists(p)}
            if not existing:
                # not an error, so that "last" can be set before the first fit
                rank_zero_warn(
                    f'.{fn}(ckpt_path="last") is set, but there is no last checkpoint available. No checkpoint will'
                    " be loaded. HINT: Set `ModelCheckpoint(..., save_last=True)`."
                )
                return None
            return max(existing, key=existing.get)
        if not ckpt_path:
            raise ValueError(f"`.{fn}()` found no path for the best weights: {ckpt_path!r}. Please specify a path for a"
                             f" checkpoint `.{fn}(ckpt_path=PATH)`")
        return os.fspath(ckpt_path)

    # ================================================================= checkpoints
    def save_checkpoint(self, filepath: Any, weights_only: bool = False, storage_options: Any = None) -> None:
        """Write the checkpoint of the current state to `filepath` (Lightning's format, written atomically)."""
        from fastlight.trainer import checkpoint_layout

        if self._module is None:
            raise AttributeError(
                "Saving a checkpoint is only possible if a model is attached to the Trainer. Did you call"
                " `Trainer.save_checkpoint()` before calling `Trainer.{fit,validate,test,predict}`?"
            )
        with self.profiler.profile("save_checkpoint"):
            checkpoint_layout.save_checkpoint(self, filepath, weights_only, storage_options)

    def _restore_tuning_checkpoint(self, filepath: str, weights_only: Optional[bool] = None) -> None:
        """Put back everything `save_checkpoint(filepath)` wrote during this run (the tuners' temporary checkpoint):
        module weights, datamodule and callback states, AMP scaler, loop progress, optimizer and scheduler states.
        The loop continues from the restored counters without a resume (Lightning resets `restarting`)."""
        from fastlight.trainer import checkpoint_layout

        checkpoint = self._read_checkpoint(filepath, weights_only)
        checkpoint_layout.pop_fastlight_entries(checkpoint)  # (the loop goes on without a resume)
        checkpoint_layout.restore_modules_and_callbacks(self, checkpoint, source=str(filepath))
        checkpoint_layout.restore_training_state(self, checkpoint, stage=self.state.fn)

    def _merge_model_callbacks(self, model: LightningModule) -> None:
        extra = self._call_module("configure_callbacks")
        if not extra:
            return
        extra = [extra] if isinstance(extra, Callback) else list(extra)
        types = {type(c) for c in extra}
        kept = [c for c in self.callbacks if type(c) not in types]
        self.callbacks = _reorder_callbacks(kept + extra)
        self._resolve_hooks()

    def _verify_loop_configuration(self, model: LightningModule, fn: str) -> None:
        def overridden(name: str) -> bool:
            if name in model.__dict__:  # set on the instance; None turns it off (Lightning's is_overridden)
                return model.__dict__[name] is not None
            return getattr(type(model), name) is not getattr(LightningModule, name)

        if fn == "fit":
            if not overridden("training_step"):
                raise MisconfigurationError(
                    "No `training_step()` method defined. Lightning `Trainer` expects as minimum a"
                    " `training_step()`, `train_dataloader()` and `configure_optimizers()` to be defined."
                )
            kind, owner = self._train_source
            if kind == "hook" and not self._has_hook(owner, "train_dataloader"):
                _check_loader_hook_not_none(owner, "train_dataloader", fn)
                raise MisconfigurationError(
                    "No `train_dataloader()` method defined. Lightning `Trainer` expects as minimum a"
                    " `training_step()`, `train_dataloader()` and `configure_optimizers()` to be defined."
                    " Pass `train_dataloaders=` to `fit`, a datamodule, or define `train_dataloader()`."
                )
            if not overridden("configure_optimizers"):
                raise MisconfigurationError(
                    "No `configure_optimizers()` method defined. Lightning `Trainer` expects as minimum a"
                    " `training_step()`, `train_dataloader()` and `configure_optimizers()` to be defined."
                )
            val_kind, val_owner = self._val_source or (None, None)
            has_val_loader = val_kind == "given" or (val_kind == "hook" and self._has_hook(val_owner, "val_dataloader"))
            if has_val_loader and not overridden("validation_step"):
                rank_zero_warn("You passed in a `val_dataloader` but have no `validation_step`. Skipping val loop.")
            elif overridden("validation_step") and not has_val_loader:
                rank_zero_warn("You defined a `validation_step` but have no `val_dataloader`. Skipping val loop.",
                               category=PossibleUserWarning)
            if not model.automatic_optimization:
                if self._cfg.gradient_clip_val is not None and self._cfg.gradient_clip_val > 0:
                    raise MisconfigurationError(
                        "Automatic gradient clipping is not supported for manual optimization."
                        f" Remove `Trainer(gradient_clip_val={self._cfg.gradient_clip_val})`"
                        " or switch to automatic optimization."
                    )
                if self._cfg.accumulate_grad_batches != 1:
                    raise MisconfigurationError(
                        "Automatic gradient accumulation is not supported for manual optimization."
                        f" Remove `Trainer(accumulate_grad_batches={self._cfg.accumulate_grad_batches})`"
                        " or switch to automatic optimization."
                    )
        elif fn in ("validate", "test"):
            step = "validation_step" if fn == "validate" else "test_step"
            if not overridden(step):
                raise MisconfigurationError(f"No `{step}()` method defined to run `Trainer.{fn}`.")
            stage = "val" if fn == "validate" else "test"
            kind, owner = getattr(self, f"_{stage}_source")
            if kind == "hook" and not self._has_hook(owner, f"{stage}_dataloader"):
                _check_loader_hook_not_none(owner, f"{stage}_dataloader", fn)
                raise MisconfigurationError(
                    f"No `{stage}_dataloader()` method defined to run `Trainer.{fn}`."
                    " Pass `dataloaders=` or a datamodule that defines it."
                )
        elif fn == "predict":
            kind, owner = self._predict_source
            if kind == "hook" and not self._has_hook(owner, "predict_dataloader"):
                _check_loader_hook_not_none(owner, "predict_dataloader", fn)
                raise MisconfigurationError(
                    "No `predict_dataloader()` method defined to run `Trainer.predict`."
                    " Pass `dataloaders=` or a datamodule that defines it."
                )
        if any(_takes_dataloader_iter(getattr(model, step, None))
               for step in ("training_step", "validation_step", "predict_step", "test_step")):
            rank_zero_warn(
                "A step takes `dataloader_iter` (the step fetches its own batches; experimental in Lightning). A step"
                " that fetches more than one batch makes the `batch_idx` the batch hooks and callbacks receive differ"
                " from the index of the batch it fetched last, and gradient accumulation counts steps, not batches.",
                category=PossibleUserWarning,
            )

    def _setup_strategy(self, model: LightningModule, fn: str) -> None:
        """Convert (precision), then the strategy moves the module (and wraps it in DDP when fitting), then the
        optimizers when fitting."""
        if self._precision.convert_module(model) is not model:
            raise RuntimeError("precision.convert_module must convert the module in place")
        if self._cfg.channels_last:  # before DDP wraps it and before the optimizers see the params
            module_channels_last(model)
        self.strategy.setup_module(model, training=fn == "fit")
        if fn == "fit":
            self._setup_optimizers(model)
        else:
            self.optimizers, self.lr_scheduler_configs = [], []

    def _setup_optimizers(self, model: LightningModule) -> None:
        optimizers, configs = init_optimizers_and_schedulers(model)
        optimizers = self._select_optimizer_engine(optimizers)
        optimizers = self.strategy.setup_optimizers(optimizers)
        self.optimizers = optimizers  # and their LightningOptimizers
        self.lr_scheduler_configs = configs

    def _select_optimizer_engine(self, optimizers: List[Any]) -> List[Any]:
        """THE place where `fused` is decided: the optimizers fused in place (fuse_in_place: same objects), the step
        engine attached to the precision plugin, flat gradient buffers built. fused=False: nothing changes."""
        from fastlight.engine.optim import fuse_in_place
        from fastlight.engine.scaler import DeviceGradScaler, _step_takes_amp_kwargs
        from fastlight.trainer.fused_step import FusedStepEngine

        precision = self._precision
        precision._engine = None
        scaler = precision.scaler
        device_scaler = isinstance(scaler, DeviceGradScaler)
        if not self._cfg.fused and not device_scaler:
            return optimizers
        if scaler is not None and not device_scaler:
            self._info_once(f"fused engine off: the precision plugin's scaler is a {type(scaler).__name__}"
                            " (fastlight's engine scales with DeviceGradScaler); the optimizers are left as they are.")
            return optimizers
        if self._cfg.fused:
            # the user's optimizer objects stay what they are to everything but their step (fuse_in_place)
            for opt in optimizers:
                done, reason = fuse_in_place(opt)
                if not done:
                    self._info_once(f"fused=True: {reason}; it runs as it is.")
        engine = FusedStepEngine(scaler if device_scaler else None, self._cfg.device)
        if self._cfg.flat_grads:
            if getattr(self.strategy, "is_distributed", False):
                # DDP (gradient_as_bucket_view=True) re-points every p.grad at its own flat buckets in each
                # backward: a second flat layout would be copied into every step. Ours gives way; the grad
                # list (views into DDP's few buckets) goes to the stats pass and the step instead.
                self._info_once("flat_grads: not built under a distributed strategy (DDP's buckets are flat).")
            else:
                for opt in optimizers:
                    if _step_takes_amp_kwargs(opt) and not engine.build_flat(opt):
                        self._info_once("flat_grads: an optimizer shares params with another one; it keeps"
                                        " per-param grads.")
        precision._engine = engine
        return optimizers

    def _info_once(self, message: str) -> None:
        said = self.__dict__.setdefault("_said", set())
        if message not in said:
            said.add(message)
            rank_zero_info(message)

    def _log_hyperparams(self, model: LightningModule) -> None:
        if not self.loggers:
            return
        dm = self.datamodule
        dm_log = dm._log_hyperparams if dm is not None else False
        hparams = None
        if model._log_hyperparams and dm_log:
            mh, dh = model.hparams_initial, dm.hparams_initial
            bad = [k for k in mh.keys() & dh.keys() if type(mh[k]) != type(dh[k]) or mh[k] != dh[k]]  # noqa: E721
            if bad:
                raise RuntimeError(
                    f"Error while merging hparams: the keys {bad} are present in both the LightningModule's and"
                    " LightningDataModule's hparams but have different values."
                )
            hparams = {**mh, **dh}
        elif model._log_hyperparams:
            hparams = model.hparams_initial
        elif dm_log:
            hparams = dm.hparams_initial
        for logger in self.loggers:
            if hparams is not None:
                logger.log_hyperparams(hparams)
            if hasattr(logger, "log_graph"):
                logger.log_graph(model)
            logger.save()

    def _run_stage(self, fn: str) -> Any:
        self._module.zero_grad()
        if fn in ("validate", "test"):
            loop = self.validate_loop if fn == "validate" else self.test_loop
            return loop.run()
        if fn == "predict":
            return self.predict_loop.run()
        with isolate_rng():  # the sanity check must not change the training's randomness
            self._run_sanity_check()
        with torch.autograd.set_detect_anomaly(self._cfg.detect_anomaly):
            self.fit_loop.run()
        return None

    def _run_sanity_check(self) -> None:
        loop = self.validate_loop
        if not (self.enable_validation and self._cfg.num_sanity_val_steps > 0):
            return
        if self.fit_loop.restarting:  # continuing an unfinished epoch from a checkpoint: no sanity check (Lightning)
            return
        self.sanity_checking = True
        self.state.stage = "sanity_check"
        self._hub.reset_results(loop.results)
        self._hub.reset_metrics()
        self._call_callbacks("on_sanity_check_start")
        loop.run()
        self._call_callbacks("on_sanity_check_end")
        val_progress = self.loop_progress.fit.val_batch  # the sanity check's batches do not count (as in Lightning)
        val_progress.total.reset()
        val_progress.current.reset()
        val_progress.is_last_batch = False
        self._hub.reset_results(loop.results)
        self._hub.reset_metrics()
        self.sanity_checking = False

    def _teardown(self) -> None:
        self.strategy.teardown()
        if self.checkpoint_io is not None and hasattr(self.checkpoint_io, "teardown"):
            self.checkpoint_io.teardown()  # e.g. AsyncCheckpointIO: wait for the files still being written
        self.fit_loop.teardown()
        self._hub.teardown()
        # persistent DataLoader workers end with the run, as in Lightning (they would otherwise live on with the loader)
        for loaders in (self.train_dataloader, self.val_dataloaders, getattr(self, "test_dataloaders", None),
                        getattr(self, "predict_dataloaders", None)):
            if loaders is not None:
                _map_iterables(_shutdown_persistent_workers, loaders)

    def print(self, *args: Any, **kwargs: Any) -> None:
        if self.local_rank == 0:  # once per machine, as in Lightning
            print(*args, **kwargs)


def _shutdown_persistent_workers(loader: Any) -> Any:
    cached = getattr(loader, "_iterator", None) if getattr(loader, "persistent_workers", False) else None
    if cached is not None:
        shutdown = getattr(cached, "_shutdown_workers", None)
        if callable(shutdown):
            shutdown()
        loader._iterator = None
    return loader


def _check_loader_hook_not_none(owner: Any, hook: str, fn: str) -> None:
    """A dataloader hook set to None on the instance: no loader for `fn` (Lightning raises this TypeError)."""
    if getattr(owner, "__dict__", {}).get(hook, 0) is None:
        prefix = "train_" if fn == "fit" else ""
        raise TypeError(
            f"An invalid dataloader was passed to `Trainer.{fn}({prefix}dataloaders=...)`. Found None."
            f" `{type(owner).__name__}.{hook}` is set to None: pass the dataloader to `Trainer.{fn}()` instead."
        )


def _resolve_strategy(strategy: Any, cfg: Any, devices: Any, num_nodes: int, sync_batchnorm: bool) -> Any:
    """THE place the run's strategy is chosen, once: fastlight.strategies decides (Lightning's rules)."""
    from fastlight.strategies import SingleDeviceStrategy, resolve_strategy

    if cfg.accelerator == "mps":  # one Apple GPU: no process group to join
        if (isinstance(strategy, str) and strategy.lower() not in ("auto", "single_device")) or num_nodes != 1:
            raise ConfigError(f"`Trainer(accelerator='mps', strategy={strategy!r}, num_nodes={num_nodes})`: MPS runs"
                              " on one device only.")
        return SingleDeviceStrategy(cfg.device)
    try:
        return resolve_strategy(strategy, cfg.accelerator, devices, num_nodes, sync_batchnorm=sync_batchnorm)
    except ValueError as err:
        raise ConfigError(f"`Trainer(...)`: {err}") from None


def _default_float() -> torch.dtype:
    dtype = torch.get_default_dtype()
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _is_checkpoint_callback(cb: Any) -> bool:
    return any(c.__name__ in ("Checkpoint", "ModelCheckpoint") for c in type(cb).__mro__)


def _is_monitoring_callback(cb: Any) -> bool:
    return _is_checkpoint_callback(cb) or any(c.__name__ == "EarlyStopping" for c in type(cb).__mro__)


def _reorder_callbacks(cbs: List[Callback]) -> List[Callback]:
    """Checkpoint callbacks run last (Lightning does the same so they see the final metrics)."""
    return [c for c in cbs if not _is_checkpoint_callback(c)] + [c for c in cbs if _is_checkpoint_callback(c)]


def _resolve_profiler(profiler: Any) -> Any:
    """None -> PassThroughProfiler (records nothing: the loop adds no timing); "simple"/"advanced"; a Profiler."""
    from fastlight.profilers import AdvancedProfiler, PassThroughProfiler, Profiler, PyTorchProfiler, SimpleProfiler

    if profiler is None:
        return PassThroughProfiler()
    if isinstance(profiler, Profiler):
        return profiler
    if isinstance(profiler, str):
        known = {"simple": SimpleProfiler, "advanced": AdvancedProfiler, "pytorch": PyTorchProfiler}
        cls = known.get(profiler.lower())
        if cls is not None:
            return cls()
        if profiler.lower() == "xla":
            raise ConfigError("`Trainer(profiler='xla')` is not supported by fastlight (no XLA devices).")
    raise ConfigError(f"`Trainer(profiler={profiler!r})`: expected None, 'simple', 'advanced', 'pytorch' or a"
                      " fastlight.profilers.Profiler instance.")
