"""LightningModule: an nn.Module with Lightning's hooks, `self.log`, optimizers and manual optimization.

The default hook bodies are Lightning's defaults. The trainer calls a no-op hook only when the module's
class overrides it (resolved once per run).
"""
import contextlib
import functools
import importlib.util
import numbers
import os
import sys
import weakref
from typing import Any, Callable, Dict, Generator, List, Mapping, Optional, Sequence, Union

import torch
from torch import Tensor, nn

from fastlight.core.hooks import DataHooks, transfer_hook_owner
from fastlight.core.hparams import HyperparametersMixin
from fastlight.utilities.exceptions import _MisconfigurationValueError
from fastlight.utilities.model_helpers import _restricted_classmethod
from fastlight.core.optimizer import LightningOptimizer
from fastlight.utilities.metric_objects import is_metric_collection, is_metric_object
from fastlight.utilities.rank_zero import rank_zero_deprecation, rank_zero_warn



def _compiler_disabled(fn: Callable) -> Callable:
    """`torch.compiler.disable(fn)` without importing torch._dynamo (seconds) when fastlight is imported: marked for
    Dynamo (which then does not trace into it), and disabled for real at the call once Dynamo is loaded (nothing can
    be compiling before). toggle/untoggle_optimizer flip requires_grad, which Dynamo cannot trace."""
    disabled: List[Callable] = []

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if "torch._dynamo" not in sys.modules:
            return fn(*args, **kwargs)
        if not disabled:
            disabled.append(torch.compiler.disable(fn))
        return disabled[0](*args, **kwargs)

    wrapper._torchdynamo_disable = True  # type: ignore[attr-defined]
    return wrapper

class LightningModule(DataHooks, HyperparametersMixin, nn.Module):
    # properties torch.jit.script must not compile (they reach the trainer or hold Python objects)
    __jit_unused_properties__: List[str] = [
        "example_input_array", "on_gpu", "current_epoch", "global_step", "global_rank", "local_rank", "logger",
        "loggers", "automatic_optimization", "trainer", "fabric", "strict_loading", "device", "dtype",
    ] + HyperparametersMixin.__jit_unused_properties__

    # the checkpoint keys of this module's hyperparameters (the trainer writes them, load_from_checkpoint reads them)
    _jit_is_scripting = False  # set while torch.jit inspects the module, whose attribute scan reads `trainer`

    CHECKPOINT_HYPER_PARAMS_KEY = "hyper_parameters"
    CHECKPOINT_HYPER_PARAMS_NAME = "hparams_name"
    CHECKPOINT_HYPER_PARAMS_TYPE = "hparams_type"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._trainer = None
        self._current_fx_name: Optional[str] = None
        self._automatic_optimization: bool = True
        self._example_input_array: Any = None
        self._device = torch.device("cpu")
        self._dtype = torch.get_default_dtype()
        self._param_requires_grad_state: Dict[Tensor, bool] = {}
        self._strict_loading: Optional[bool] = None
        # set by Lightning Fabric's `setup` when this module runs in a Fabric program (it checks for `_fabric`): then
        # log/log_dict, optimizers, backward, clip_gradients and `self.trainer` go through that Fabric
        self._fabric: Any = None
        self._fabric_optimizers: List[Any] = []

    @_restricted_classmethod  # a classmethod that refuses to run on an instance (the result would be dropped)
    def load_from_checkpoint(cls, checkpoint_path: Any, map_location: Any = None, hparams_file: Any = None,
                             strict: Optional[bool] = None, weights_only: Optional[bool] = None,
                             **kwargs: Any) -> "LightningModule":
        """A new module built from the checkpoint's hyperparameters (overridden by `hparams_file`, then `kwargs`),
        with its weights loaded (`strict` defaults to `strict_loading`). The file is read safely unless
        `weights_only=False` is passed for a trusted file."""
        from fastlight.core.saving import _load_from_checkpoint

        return _load_from_checkpoint(cls, checkpoint_path, map_location=map_location, hparams_file=hparams_file,
                                     strict=strict, weights_only=weights_only, **kwargs)

    @property
    def strict_loading(self) -> bool:
        """Whether restoring a checkpoint requires its keys to match the module's exactly (Lightning's default True)."""
        return True if self._strict_loading is None else self._strict_loading

    @strict_loading.setter
    def strict_loading(self, strict: bool) -> None:
        self._strict_loading = strict

    def __getstate__(self) -> Dict[str, Any]:
        # pickling or deep-copying a module (SWA's and WeightAveraging's averaged copies) leaves its Trainer behind
        state = dict(self.__dict__)
        state["_trainer"] = None
        state["_fabric"] = None  # (a weak proxy, which cannot be pickled)
        return state

    # ------------------------------------------------------------------ properties
    @property
    def trainer(self):
        if self._trainer is None and self._fabric is not None:
            return _TrainerFabricShim(self._fabric)
        if self._trainer is None and not LightningModule._jit_is_scripting:
            raise RuntimeError(f"{self.__class__.__qualname__} is not attached to a `Trainer`.")
        return self._trainer

    @trainer.setter
    def trainer(self, trainer) -> None:
        for child in self.children():  # LightningModules nested in this one (an ensemble) share its trainer
            if isinstance(child, LightningModule):
                child.trainer = trainer
        self._trainer = trainer

    @property
    def device(self) -> torch.device:
        return self._device

    @property
    def dtype(self) -> torch.dtype:
        return self._dtype

    def _apply(self, fn, *args, **kwargs):
        out = super()._apply(fn, *args, **kwargs)
        # track where the parameters went (Lightning's DeviceDtypeModuleMixin does this on .to/.cuda/.cpu)
        for p in self.parameters():
            self._device = p.device
            if p.is_floating_point():
                self._dtype = p.dtype
            break
        else:
            for b in self.buffers():
                self._device = b.device
                break
        return out

    @property
    def automatic_optimization(self) -> bool:
        return self._automatic_optimization

    @automatic_optimization.setter
    def automatic_optimization(self, value: bool) -> None:
        self._automatic_optimization = value

    @property
    def example_input_array(self) -> Any:
        return self._example_input_array

    @example_input_array.setter
    def example_input_array(self, value: Any) -> None:
        self._example_input_array = value

    @property
    def current_epoch(self) -> int:
        return self._trainer.current_epoch if self._trainer is not None else 0

    @property
    def global_step(self) -> int:
        return self._trainer.global_step if self._trainer is not None else 0

    @property
    def global_rank(self) -> int:
        return self._trainer.global_rank if self._trainer is not None else 0

    @property
    def local_rank(self) -> int:
        return self._trainer.local_rank if self._trainer is not None else 0

    @property
    def on_gpu(self) -> bool:
        return self.device.type == "cuda"

    @property
    def logger(self):
        if self._trainer is None and self._fabric is not None:
            return self._fabric.logger
        return self._trainer.logger if self._trainer is not None else None

    @property
    def loggers(self) -> list:
        if self._trainer is None and self._fabric is not None:
            return self._fabric.loggers
        return self._trainer.loggers if self._trainer is not None else []

    @property
    def fabric(self):
        """The Lightning Fabric this module runs under (None under a Trainer), held weakly."""
        return self._fabric

    @fabric.setter
    def fabric(self, fabric: Any) -> None:
        for child in self.children():  # LightningModules nested in this one share it, as they share a trainer
            if isinstance(child, LightningModule):
                child.fabric = fabric
        if fabric is not None and not isinstance(fabric, weakref.ProxyTypes):
            fabric = weakref.proxy(fabric)
        self._fabric = fabric

    def _log_through_fabric(self, metrics: Mapping[str, Any], logger: Optional[bool]) -> None:
        """`self.log` / `log_dict` in a Fabric program: straight to Fabric's loggers (`logger=False`: nowhere)."""
        if logger is False:
            return
        for name, value in metrics.items():
            if isinstance(value, Mapping):
                raise ValueError(f"`self.log({name}, {value})` was called, but nested dictionaries cannot be logged")
        self._fabric.log_dict(metrics=dict(metrics))

    # ------------------------------------------------------------------ logging
    def log(
        self,
        name: str,
        value: Any,
        prog_bar: bool = False,
        logger: Optional[bool] = None,
        on_step: Optional[bool] = None,
        on_epoch: Optional[bool] = None,
        reduce_fx: Union[str, Any] = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Optional[Any] = None,
        add_dataloader_idx: bool = True,
        batch_size: Optional[int] = None,
        metric_attribute: Optional[str] = None,
        rank_zero_only: bool = False,
    ) -> None:
        """Record `value` under `name` for loggers, the progress bar and callbacks (see Lightning's docs)."""
        trainer = self._trainer
        if isinstance(value, Tensor):  # the common case first: ABC isinstance checks are slow
            if value.numel() != 1:
                raise ValueError(
                    f"`self.log({name}, {value})` was called, but the tensor must have a single element."
                    f" You can try doing `self.log({name}, {value}.mean())`"
                )
        elif isinstance(value, Mapping):
            raise ValueError(f"`self.log({name}, {value})` was called, but `dict` values cannot be logged; use log_dict")
        elif is_metric_object(value):
            if metric_attribute is None:
                self._find_metric_attribute(name, value)
        elif not isinstance(value, numbers.Number):
            raise ValueError(
                f"`self.log({name}, {value})` was called, but `{type(value).__name__}` values cannot be logged"
            )
        if trainer is None:
            if self._fabric is not None:
                self._log_through_fabric({name: value}, logger)
                return
            rank_zero_warn(
                "You are trying to `self.log()` but the `self.trainer` reference is not registered on the model yet."
            )
            return
        trainer._log(
            self, name, value, prog_bar, logger, on_step, on_epoch, reduce_fx, enable_graph,
            sync_dist, add_dataloader_idx, batch_size, sync_dist_group=sync_dist_group, rank_zero_only=rank_zero_only,
        )

    def _find_metric_attribute(self, name: str, metric: Any) -> str:
        """Lightning requires a logged Metric to be an attribute (submodule) of the LightningModule."""
        found = {id(m): n for n, m in self.named_modules() if is_metric_object(m)}
        if id(metric) not in found:
            hint = (f" You can fix this by calling `self.log({name}, ..., metric_attribute=name)` where `name` is one"
                    f" of {list(found.values())}") if found else (
                " You can fix this by setting an attribute for the metric in your `LightningModule`.")
            raise _MisconfigurationValueError(
                "Could not find the `LightningModule` attribute for the `torchmetrics.Metric` logged." + hint
            )
        return found[id(metric)]

    def log_dict(
        self,
        dictionary: Mapping[str, Any],
        prog_bar: bool = False,
        logger: Optional[bool] = None,
        on_step: Optional[bool] = None,
        on_epoch: Optional[bool] = None,
        reduce_fx: Union[str, Any] = "mean",
        enable_graph: bool = False,
        sync_dist: bool = False,
        sync_dist_group: Optional[Any] = None,
        add_dataloader_idx: bool = True,
        batch_size: Optional[int] = None,
        rank_zero_only: bool = False,
    ) -> None:
        if self._trainer is None and self._fabric is not None:  # one call: one logger row, as in Lightning
            for k, v in dictionary.items():
                if isinstance(v, Tensor) and v.numel() != 1:
                    raise ValueError(f"`self.log_dict` was called with `{k}`, a tensor with {v.numel()} elements:"
                                     " each value must have a single element.")
            self._log_through_fabric(dictionary, logger)
            return
        if is_metric_collection(dictionary):
            # a torchmetrics MetricCollection: its metrics under their own names (as Lightning does); with compute
            # groups, the metrics as they are (no state copies: items() is asked once)
            kwargs = dict(keep_base=False)
            if getattr(dictionary, "_enable_compute_groups", False):
                kwargs["copy_state"] = False
            items = dictionary.items(**kwargs)
        else:
            items = dictionary.items()
        for k, v in items:
            self.log(
                name=k, value=v, prog_bar=prog_bar, logger=logger, on_step=on_step, on_epoch=on_epoch,
                reduce_fx=reduce_fx, enable_graph=enable_graph, sync_dist=sync_dist,
                sync_dist_group=sync_dist_group, add_dataloader_idx=add_dataloader_idx, batch_size=batch_size,
                rank_zero_only=rank_zero_only,
            )

    def print(self, *args: Any, **kwargs: Any) -> None:
        """print on rank 0 only; through the progress bar while one is showing (so its lines are not broken)."""
        if self._trainer is None or self._trainer.is_global_zero:
            bar = getattr(self._trainer, "progress_bar_callback", None)
            if bar is not None and getattr(bar, "is_enabled", False):
                bar.print(*args, **kwargs)
            else:
                print(*args, **kwargs)

    # ------------------------------------------------------------------ steps (user code)
    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return super().forward(*args, **kwargs)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        rank_zero_warn("`training_step` must be implemented to be used with the Lightning Trainer")

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        pass

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        pass

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        batch = kwargs.get("batch", args[0])
        return self(batch)

    def configure_optimizers(self) -> Any:
        raise NotImplementedError(
            "`configure_optimizers` must be implemented to be used with the Lightning Trainer"
        )

    def configure_callbacks(self) -> Union[Sequence[Any], Any]:
        return []

    def configure_model(self) -> None:
        pass

    def configure_sharded_model(self) -> None:
        pass

    # ------------------------------------------------------------------ loop hooks (no-ops)
    def on_fit_start(self) -> None: ...
    def on_fit_end(self) -> None: ...
    def on_train_start(self) -> None: ...
    def on_train_end(self) -> None: ...
    def on_validation_start(self) -> None: ...
    def on_validation_end(self) -> None: ...
    def on_test_start(self) -> None: ...
    def on_test_end(self) -> None: ...
    def on_predict_start(self) -> None: ...
    def on_predict_end(self) -> None: ...
    def on_train_batch_start(self, batch: Any, batch_idx: int) -> Optional[int]: ...
    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None: ...
    def on_validation_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_test_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_predict_batch_start(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_predict_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None: ...
    def on_train_epoch_start(self) -> None: ...
    def on_train_epoch_end(self) -> None: ...
    def on_validation_epoch_start(self) -> None: ...
    def on_validation_epoch_end(self) -> None: ...
    def on_test_epoch_start(self) -> None: ...
    def on_test_epoch_end(self) -> None: ...
    def on_predict_epoch_start(self) -> None: ...
    def on_predict_epoch_end(self) -> None: ...
    def on_before_zero_grad(self, optimizer: torch.optim.Optimizer) -> None: ...
    def on_before_backward(self, loss: Tensor) -> None: ...
    def on_after_backward(self) -> None: ...
    def on_before_optimizer_step(self, optimizer: torch.optim.Optimizer) -> None: ...
    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None: ...
    def on_load_checkpoint(self, checkpoint: Dict[str, Any]) -> None: ...

    def on_validation_model_zero_grad(self) -> None:
        self.zero_grad()  # torch's default: set_to_none=True

    def on_validation_model_eval(self) -> None:
        self.trainer.model.eval()  # the module, or its wrapper (DDP)

    def on_validation_model_train(self) -> None:
        self.trainer.model.train()

    def on_test_model_eval(self) -> None:
        self.trainer.model.eval()  # the module, or its wrapper (DDP)

    def on_test_model_train(self) -> None:
        self.trainer.model.train()

    def on_predict_model_eval(self) -> None:
        self.trainer.model.eval()  # the module, or its wrapper (DDP)

    # ------------------------------------------------------------------ optimization hooks (with defaults)
    def backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        if self._fabric is not None:
            self._fabric.backward(loss, *args, **kwargs)
            return
        loss.backward(*args, **kwargs)

    def optimizer_step(self, epoch: int, batch_idx: int, optimizer: Any, optimizer_closure: Optional[Any] = None) -> None:
        optimizer.step(closure=optimizer_closure)

    def optimizer_zero_grad(self, epoch: int, batch_idx: int, optimizer: torch.optim.Optimizer) -> None:
        optimizer.zero_grad()

    def configure_gradient_clipping(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: Optional[Union[int, float]] = None,
        gradient_clip_algorithm: Optional[str] = None,
    ) -> None:
        self.clip_gradients(optimizer, gradient_clip_val=gradient_clip_val, gradient_clip_algorithm=gradient_clip_algorithm)

    def clip_gradients(
        self,
        optimizer: torch.optim.Optimizer,
        gradient_clip_val: Optional[Union[int, float]] = None,
        gradient_clip_algorithm: Optional[str] = None,
    ) -> None:
        """Clip the gradients of `optimizer`'s parameters (by norm or value) through the precision plugin."""
        if self._fabric is not None:
            by_value = (gradient_clip_algorithm or "norm").lower() == "value"
            self._fabric.clip_gradients(self, optimizer, clip_val=gradient_clip_val if by_value else None,
                                        max_norm=None if by_value else gradient_clip_val)
            return
        trainer = self.trainer
        cfg_val = trainer.gradient_clip_val
        cfg_algo = trainer.gradient_clip_algorithm
        if gradient_clip_val is None:
            gradient_clip_val = cfg_val or 0.0
        elif cfg_val is not None and cfg_val != gradient_clip_val:
            raise _MisconfigurationValueError(
                f"You have set `Trainer(gradient_clip_val={cfg_val!r})` and have passed"
                f" `clip_gradients(gradient_clip_val={gradient_clip_val!r})`. Please use only one of them."
            )
        if gradient_clip_algorithm is None:
            gradient_clip_algorithm = cfg_algo or "norm"
        else:
            gradient_clip_algorithm = gradient_clip_algorithm.lower()
            if cfg_algo is not None and cfg_algo != gradient_clip_algorithm:
                raise _MisconfigurationValueError(
                    f"You have set `Trainer(gradient_clip_algorithm={cfg_algo!r})` and have passed"
                    f" `clip_gradients(gradient_clip_algorithm={gradient_clip_algorithm!r})`. Please use only one of them."
                )
        if not isinstance(gradient_clip_val, (int, float)):
            raise TypeError(f"`gradient_clip_val` should be an int or a float. Got {gradient_clip_val}.")
        if gradient_clip_algorithm not in ("norm", "value"):
            raise ValueError(
                f"`gradient_clip_algorithm` {gradient_clip_algorithm!r} is invalid. Allowed algorithms: 'norm', 'value'."
            )
        trainer._precision.clip_gradients(optimizer, gradient_clip_val, gradient_clip_algorithm)

    def lr_scheduler_step(self, scheduler: Any, metric: Optional[Any]) -> None:
        if metric is None:
            scheduler.step()
        else:
            scheduler.step(metric)

    # ------------------------------------------------------------------ manual optimization
    def optimizers(self, use_pl_optimizer: bool = True) -> Union[Any, List[Any]]:
        if self._fabric is not None:  # the optimizers Fabric's setup wrapped for this module
            opts = self._fabric_optimizers
        else:
            trainer = self.trainer
            opts = trainer._lightning_optimizers if use_pl_optimizer else trainer.optimizers
        if isinstance(opts, list) and len(opts) == 1:
            return opts[0]
        return opts

    def lr_schedulers(self) -> Union[None, List[Any], Any]:
        configs = self.trainer.lr_scheduler_configs
        if not configs:
            return None
        schedulers = [c.scheduler for c in configs]
        if len(schedulers) == 1:
            return schedulers[0]
        return schedulers

    def _verify_is_manual_optimization(self, fn_name: str) -> None:
        if self.automatic_optimization:
            raise RuntimeError(
                f"To use `{fn_name}`, please disable automatic optimization:"
                " set model property `automatic_optimization` as False"
            )

    def manual_backward(self, loss: Tensor, *args: Any, **kwargs: Any) -> None:
        """Backward through the precision plugin (loss scaling under 16-mixed), with the backward hooks."""
        if self._fabric is not None:
            self._fabric.backward(loss, *args, **kwargs)
            return
        self._verify_is_manual_optimization("manual_backward")
        self.trainer.strategy.backward(loss, None, *args, **kwargs)  # DDP arms its gradient all-reduce there

    @_compiler_disabled
    def toggle_optimizer(self, optimizer: Any) -> None:
        """Freeze every parameter that `optimizer` does not own (requires_grad=False), remembering the state."""
        state: Dict[Tensor, bool] = {}
        for opt in self.trainer.optimizers:
            for group in opt.param_groups:
                for p in group["params"]:
                    if p in state:
                        continue
                    state[p] = p.requires_grad
                    p.requires_grad = False
        inner = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        for group in inner.param_groups:
            for p in group["params"]:
                p.requires_grad = state[p]
        self._param_requires_grad_state = state

    @_compiler_disabled
    def untoggle_optimizer(self, optimizer: Any) -> None:
        inner = optimizer.optimizer if isinstance(optimizer, LightningOptimizer) else optimizer
        for opt in self.trainer.optimizers:
            if opt is not inner:
                for group in opt.param_groups:
                    for p in group["params"]:
                        if p in self._param_requires_grad_state:
                            p.requires_grad = self._param_requires_grad_state[p]
        self._param_requires_grad_state = {}

    @contextlib.contextmanager
    def toggled_optimizer(self, optimizer: Any) -> Generator[None, None, None]:
        """`toggle_optimizer(optimizer)` for the body of a `with` block, `untoggle_optimizer` when it exits (also on
        an exception): only `optimizer`'s parameters get gradients inside."""
        self.toggle_optimizer(optimizer)
        try:
            yield
        finally:
            self.untoggle_optimizer(optimizer)

    # ------------------------------------------------------------------ export
    def _transfer_example(self, batch: Any) -> Any:
        """An export input through the transfer hooks onto this module's device, as a batch would go (the
        attached datamodule's hook when it overrides it)."""
        dm = getattr(self._trainer, "datamodule", None)

        def call(name: str, *args: Any) -> Any:
            return getattr(transfer_hook_owner(self, dm, name), name)(*args)

        batch = call("on_before_batch_transfer", batch, 0)
        batch = call("transfer_batch_to_device", batch, self.device, 0)
        return call("on_after_batch_transfer", batch, 0)

    @torch.no_grad()
    def to_torchscript(self, file_path: Optional[Union[str, os.PathLike]] = None, method: Optional[str] = "script",
                       example_inputs: Optional[Any] = None, **kwargs: Any) -> Any:
        """This module compiled by `torch.jit.script` (`method="script"`) or `torch.jit.trace` (`method="trace"`, with
        `example_inputs` or `example_input_array` moved to the module's device), in eval mode; the module's train
        mode is restored afterwards. Saved with `torch.jit.save` when `file_path` is given. `kwargs` go to torch."""
        rank_zero_deprecation(
            "`LightningModule.to_torchscript` is deprecated (as in Lightning 2.6): TorchScript is deprecated in"
            " PyTorch. Use `torch.export.export()` for model exporting instead."
        )
        if method not in ("script", "trace"):
            raise ValueError(f"The 'method' parameter only supports 'script' or 'trace', but value given was: {method}")
        if method == "trace":
            if example_inputs is None:
                if self.example_input_array is None:
                    raise ValueError(
                        "Choosing method=`trace` requires either `example_inputs` or `model.example_input_array` to"
                        " be defined."
                    )
                example_inputs = self.example_input_array
            if kwargs.get("check_inputs") is not None:
                kwargs["check_inputs"] = self._transfer_example(kwargs["check_inputs"])
            example_inputs = self._transfer_example(example_inputs)
        mode = self.training
        LightningModule._jit_is_scripting = True
        try:
            if method == "script":
                scripted = torch.jit.script(self.eval(), **kwargs)
            else:
                scripted = torch.jit.trace(func=self.eval(), example_inputs=example_inputs, **kwargs)
        finally:
            LightningModule._jit_is_scripting = False
            self.train(mode)
        if file_path is not None:
            torch.jit.save(scripted, os.fspath(file_path) if isinstance(file_path, os.PathLike) else file_path)
        return scripted

    @torch.no_grad()
    def to_onnx(self, file_path: Any = None, input_sample: Optional[Any] = None, **kwargs: Any) -> Any:
        """Export this module with `torch.onnx.export(self, input_sample, file_path, **kwargs)`; `input_sample` defaults
        to `example_input_array` and is moved to the module's device first. Needs the `onnx` package (and
        `onnxscript` for torch's dynamo exporter, its default in recent torch). Returns what torch returns."""
        if input_sample is None:
            if self.example_input_array is None:
                raise ValueError(
                    "Could not export to ONNX since neither `input_sample` nor `model.example_input_array` attribute"
                    " is set."
                )
            input_sample = self.example_input_array
        name = type(self).__name__
        if importlib.util.find_spec("onnx") is None:
            raise ModuleNotFoundError(f"`{name}.to_onnx()` requires the `onnx` package: `pip install onnx`.")
        if kwargs.get("dynamo", _onnx_export_uses_dynamo_by_default()) and importlib.util.find_spec("onnxscript") is None:
            raise ModuleNotFoundError(
                f"`{name}.to_onnx()` with torch's dynamo exporter requires the `onnxscript` package: `pip install"
                " onnxscript`, or pass `dynamo=False` for the TorchScript exporter."
            )
        input_sample = self._transfer_example(input_sample)
        if isinstance(file_path, os.PathLike):
            file_path = os.fspath(file_path)
        mode = self.training
        try:
            return torch.onnx.export(self, input_sample, file_path, **kwargs)
        finally:
            self.train(mode)

    # ------------------------------------------------------------------ misc
    def freeze(self) -> "LightningModule":
        """No parameter requires grad, eval mode; returns the module (as Lightning's does)."""
        for p in self.parameters():
            p.requires_grad = False
        self.eval()
        return self

    def unfreeze(self) -> "LightningModule":
        """Every parameter requires grad, train mode; returns the module."""
        for p in self.parameters():
            p.requires_grad = True
        self.train()
        return self

    def all_gather(self, data: Any, group: Optional[Any] = None, sync_grads: bool = False) -> Any:
        """Gather a tensor (or a dict/list/tuple of tensors and numbers) from every process: each tensor gets a
        leading dimension of size world_size. One process: `data` comes back unchanged."""
        trainer = self._trainer
        if trainer is None:
            return data
        return trainer.strategy.all_gather(data, group=group, sync_grads=sync_grads)


def _onnx_export_uses_dynamo_by_default() -> bool:
    """Whether `torch.onnx.export` picks the dynamo exporter when `dynamo` is not passed (True since torch 2.9)."""
    import inspect

    default = inspect.signature(torch.onnx.export).parameters.get("dynamo")
    return bool(default is not None and default.default is True)


class _TrainerFabricShim:
    """`self.trainer` of a module in a Fabric program: attribute reads go to the Fabric (global_rank, world_size,
    device ...); what a Fabric lacks is named in the error."""

    def __init__(self, fabric: Any) -> None:
        self._fabric = fabric

    def __getattr__(self, name: str) -> Any:
        try:
            return getattr(self._fabric, name)
        except AttributeError:
            raise AttributeError(
                f"Your LightningModule reads `self.trainer.{name}`, which a Fabric does not have: it runs under"
                " Fabric (`fabric.setup(model)`), not a Trainer."
            ) from None
