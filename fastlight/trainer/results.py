"""What `self.log` records, and how it reaches callback_metrics, logged_metrics, the progress bar and loggers.

Semantics follow Lightning 2.x: per-hook defaults for on_step/on_epoch, `_step`/`_epoch` suffixes when both
are set, batch-size-weighted epoch means, min/max/sum reductions, `/dataloader_idx_N` suffixes, and
torchmetrics `Metric` objects (step value: the metric's forward result; epoch value: `compute()`; the metric is
reset when its loop's results are, at the end of each train epoch and of each evaluation run).

Cost: a logged value stays a device tensor. Nothing here calls `.item()` except when a logger (every
`log_every_n_steps`) or the progress bar (throttled) needs a number. The per-batch metric dicts are not
rebuilt every batch: the batch-end snapshot is taken lazily, the first time someone looks (or before anything
that would change what the snapshot holds).
"""
from typing import Any, Dict, Iterable, Mapping, Optional, Tuple

import torch
from torch import Tensor

from fastlight.utilities.exceptions import MisconfigurationException


# hook -> (allowed on_step, allowed on_epoch, default on_step, default on_epoch); None: logging not allowed
_STEP_HOOK = ((False, True), (False, True), True, False)
_EVAL_STEP_HOOK = ((False, True), (False, True), False, True)
_EPOCH_HOOK = ((False,), (True,), False, True)
FX_OPTIONS: Dict[str, Optional[tuple]] = {
    "on_before_backward": _STEP_HOOK, "backward": _STEP_HOOK, "on_after_backward": _STEP_HOOK,
    "on_before_optimizer_step": _STEP_HOOK, "optimizer_step": _STEP_HOOK, "configure_gradient_clipping": _STEP_HOOK,
    "clip_gradients": _STEP_HOOK, "on_before_zero_grad": _STEP_HOOK, "optimizer_zero_grad": _STEP_HOOK,
    "on_train_batch_start": _STEP_HOOK, "on_train_batch_end": _STEP_HOOK, "training_step": _STEP_HOOK,
    "on_validation_batch_start": _EVAL_STEP_HOOK, "on_validation_batch_end": _EVAL_STEP_HOOK,
    "on_test_batch_start": _EVAL_STEP_HOOK, "on_test_batch_end": _EVAL_STEP_HOOK,
    "validation_step": _EVAL_STEP_HOOK, "test_step": _EVAL_STEP_HOOK,
    "on_train_start": _EPOCH_HOOK, "on_validation_start": _EPOCH_HOOK, "on_test_start": _EPOCH_HOOK,
    "on_train_epoch_start": _EPOCH_HOOK, "on_train_epoch_end": _EPOCH_HOOK,
    "on_validation_epoch_start": _EPOCH_HOOK, "on_validation_epoch_end": _EPOCH_HOOK,
    "on_test_epoch_start": _EPOCH_HOOK, "on_test_epoch_end": _EPOCH_HOOK,
}
for _fx in (
    "lr_scheduler_step", "on_fit_start", "on_fit_end", "on_sanity_check_start", "on_sanity_check_end", "on_train_end",
    "on_validation_end", "on_test_end", "on_predict_start", "on_predict_end", "on_predict_epoch_start",
    "on_predict_epoch_end", "on_before_batch_transfer", "transfer_batch_to_device", "on_after_batch_transfer",
    "on_predict_batch_start", "on_predict_batch_end", "on_exception", "state_dict", "on_save_checkpoint",
    "on_load_checkpoint", "load_state_dict", "setup", "teardown", "configure_sharded_model", "configure_model",
    "predict_step", "configure_optimizers", "train_dataloader", "val_dataloader", "test_dataloader", "prepare_data",
    "configure_callbacks", "on_validation_model_zero_grad", "on_validation_model_eval", "on_test_model_eval",
    "on_validation_model_train", "on_test_model_train",
):
    FX_OPTIONS[_fx] = None


class LoggingError(MisconfigurationException, RuntimeError):
    """`self.log` used where or how Lightning does not allow it."""


def resolve_log_levels(fx: str, on_step: Optional[bool], on_epoch: Optional[bool]) -> Tuple[bool, bool]:
    if fx not in FX_OPTIONS:
        raise LoggingError(f"Logging inside `{fx}` is not implemented.")
    opts = FX_OPTIONS[fx]
    if opts is None:
        raise LoggingError(
            f"You can't `self.log()` inside `{fx}`. HINT: You can still log directly to the logger by using"
            " `self.logger.experiment`."
        )
    allowed_step, allowed_epoch, default_step, default_epoch = opts
    on_step = default_step if on_step is None else on_step
    on_epoch = default_epoch if on_epoch is None else on_epoch
    if on_step not in allowed_step:
        raise LoggingError(f"You can't `self.log(on_step={on_step})` inside `{fx}`, must be one of {allowed_step}.")
    if on_epoch not in allowed_epoch:
        raise LoggingError(f"You can't `self.log(on_epoch={on_epoch})` inside `{fx}`, must be one of {allowed_epoch}.")
    return on_step, on_epoch


def parse_reduce_fx(reduce_fx: Any) -> str:
    if isinstance(reduce_fx, str):
        r = reduce_fx.lower()
        if r == "avg":
            r = "mean"
        if r in ("min", "max", "mean", "sum"):
            return r
    else:
        for r, fns in (("mean", (torch.mean,)), ("sum", (torch.sum, sum)), ("max", (torch.max, max)),
                       ("min", (torch.min, min))):
            if reduce_fx in fns:
                return r
    raise LoggingError(
        "Only `self.log(..., reduce_fx={min,max,mean,sum})` are supported."
        f" If you need a custom reduction, please log a `torchmetrics.Metric` instance instead. Found: {reduce_fx}"
    )


def _default_dtype() -> torch.dtype:
    dtype = torch.get_default_dtype()
    return dtype if dtype in (torch.float32, torch.float64) else torch.float32


def _batch_sizes(batch: Any) -> Iterable[int]:
    if isinstance(batch, Tensor):
        yield batch.size(0) if batch.ndim > 0 else 1
    elif isinstance(batch, (str, bytes)):
        return
    elif isinstance(batch, Mapping):
        for v in batch.values():
            yield from _batch_sizes(v)
    elif isinstance(batch, Iterable):
        for v in batch:
            yield from _batch_sizes(v)


def extract_batch_size(batch: Any) -> int:
    for size in _batch_sizes(batch):
        return size
    raise LoggingError(
        "We could not infer the batch_size from the batch. Either simplify its structure"
        " or provide the batch_size as `self.log(..., batch_size=batch_size)`."
    )


class _Meta:
    __slots__ = ("fx", "name", "prog_bar", "logger", "on_step", "on_epoch", "reduce", "enable_graph",
                 "add_dataloader_idx", "dataloader_idx", "key", "sync")

    def __init__(self, fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx,
                 dataloader_idx, sync=None):
        if not on_step and not on_epoch:
            raise LoggingError("`self.log(on_step=False, on_epoch=False)` is not useful.")
        self.fx, self.name, self.prog_bar, self.logger = fx, name, prog_bar, logger
        self.on_step, self.on_epoch, self.reduce, self.enable_graph = on_step, on_epoch, reduce, enable_graph
        self.add_dataloader_idx, self.dataloader_idx = add_dataloader_idx, dataloader_idx
        # sync_dist: (strategy.reduce, process group), or None (no sync_dist, or a single process)
        self.sync = sync
        self.key = (fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx,
                    dataloader_idx, sync is not None)


def _result_names(meta: _Meta) -> Tuple[str, str, str]:
    """(name, step name, epoch name): `_step`/`_epoch` suffixes when logged on both, the dataloader suffix."""
    name = meta.name
    forked = meta.on_step and meta.on_epoch
    step_name = f"{name}_step" if forked else name
    epoch_name = f"{name}_epoch" if forked else name
    if meta.add_dataloader_idx and meta.dataloader_idx is not None:
        suffix = f"/dataloader_idx_{meta.dataloader_idx}"
        name, step_name, epoch_name = name + suffix, step_name + suffix, epoch_name + suffix
    return name, step_name, epoch_name


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _ResultMetric:
    __slots__ = ("meta", "value", "cumulated_batch_size", "step_value", "computed", "has_reset", "_default",
                 "names")
    is_tensor = True

    def __init__(self, meta: _Meta, device: torch.device) -> None:
        self.meta = meta
        self._default = float("-inf") if meta.reduce == "max" else float("inf") if meta.reduce == "min" else 0.0
        self.value = torch.tensor(self._default, dtype=_default_dtype(), device=device)
        self.cumulated_batch_size = 0
        self.step_value: Optional[Tensor] = None
        self.computed: Optional[Tensor] = None
        self.has_reset = False
        self.names = _result_names(meta)

    def update(self, value: Tensor, batch_size: int) -> None:
        self.computed = None
        meta = self.meta
        if meta.on_step:
            if meta.sync is not None:  # the step value every rank sees is the reduced one (Lightning's)
                reduce_fn, group = meta.sync
                value_for_step = reduce_fn(value, group=group, reduce_op=meta.reduce)
                self.step_value = value_for_step
                if not meta.on_epoch:
                    self.value = value_for_step
                    return
            else:
                self.step_value = value
            if not meta.on_epoch:
                self.value = value
                return
        r = meta.reduce
        if r == "mean":
            self.value = self.value + value * batch_size
            self.cumulated_batch_size += batch_size
        elif r == "max":
            self.value = torch.max(self.value, value)
        elif r == "min":
            self.value = torch.min(self.value, value)
        else:
            self.value = self.value + value

    def compute(self) -> Tensor:
        if self.computed is None:
            sync = self.meta.sync
            if sync is not None and self.meta.on_epoch:
                # a collective: every rank reaches it at the same point (epoch ends), see MetricsHub
                reduce_fn, group = sync
                if self.meta.reduce == "mean":  # the batch-size-weighted mean over all ranks: sum / count
                    count = torch.tensor(self.cumulated_batch_size, dtype=self.value.dtype, device=self.value.device)
                    self.computed = (reduce_fn(self.value, group=group, reduce_op="sum")
                                     / reduce_fn(count, group=group, reduce_op="sum"))
                else:
                    self.computed = reduce_fn(self.value, group=group, reduce_op=self.meta.reduce)
            elif self.meta.reduce == "mean":
                self.computed = self.value / self.cumulated_batch_size
            else:
                self.computed = self.value
        return self.computed

    def reset(self) -> None:
        self.value = torch.tensor(self._default, dtype=self.value.dtype, device=self.value.device)
        self.cumulated_batch_size = 0
        self.step_value = None
        self.computed = None
        self.has_reset = True


class _MetricObjectResult:
    """A logged torchmetrics Metric: the user updates it (usually by calling it), the loop reads it."""

    __slots__ = ("meta", "metric", "step_value", "computed", "has_reset", "names")
    is_tensor = False

    def __init__(self, meta: _Meta, metric: Any) -> None:
        self.meta = meta
        self.metric = metric
        self.step_value: Optional[Tensor] = None
        self.computed: Optional[Tensor] = None
        self.has_reset = False
        self.names = _result_names(meta)

    def update(self, metric: Any) -> None:
        self.metric = metric
        self.computed = None
        # the value of the metric's last forward (None if the user called update() only)
        self.step_value = self._checked(getattr(metric, "_forward_cache", None))

    def compute(self) -> Optional[Tensor]:
        if self.computed is None:
            self.computed = self._checked(self.metric.compute())
        return self.computed

    def _checked(self, value: Any) -> Optional[Tensor]:
        if value is not None and not isinstance(value, Tensor):
            raise ValueError(
                f"The `.compute()` return of the metric logged as {self.meta.name!r} must be a tensor. Found {value}"
            )
        return value

    def reset(self) -> None:
        self.metric.reset()
        self.step_value = None
        self.computed = None
        self.has_reset = True


class ResultCollection(dict):
    """The values logged during one loop (training, validation or test), keyed as Lightning does: "hook.name", or
    "hook.name.dataloader_idx" when logged per dataloader."""

    def __init__(self, training: bool) -> None:
        super().__init__()
        self.training = training
        self.batch: Any = None
        self.batch_size: Optional[int] = None
        self.dataloader_idx: Optional[int] = None

    def _entry(self, fx: str, name: str, prog_bar: bool, logger: bool, on_step: bool, on_epoch: bool, reduce: str,
               enable_graph: bool, add_dataloader_idx: bool, sync: Optional[tuple], cls: type, arg: Any) -> Any:
        """The result logged under (hook, name, dataloader): `cls(meta, arg)` at the first call. A later call with
        other arguments, or a tensor where a Metric was logged (or the reverse), is refused as Lightning does."""
        dl_idx = self.dataloader_idx
        # Lightning's key: "hook.name", ".dataloader_idx" appended when logged per dataloader
        key = f"{fx}.{name}" if dl_idx is None or not add_dataloader_idx else f"{fx}.{name}.{dl_idx}"
        result = self.get(key)
        if result is None:
            result = self[key] = cls(_Meta(fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph,
                                           add_dataloader_idx, dl_idx, sync), arg)
        elif type(result) is not cls or result.meta.key != (
                fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx, dl_idx,
                sync is not None):
            raise LoggingError(
                f"You called `self.log({name}, ...)` twice in `{fx}` with different arguments. This is not allowed"
            )
        return result

    def log(self, fx: str, name: str, value: Tensor, prog_bar: bool, logger: bool, on_step: bool, on_epoch: bool,
            reduce: str, enable_graph: bool, add_dataloader_idx: bool, batch_size: Optional[int],
            sync: Optional[tuple] = None) -> None:
        metric = self._entry(fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx,
                             sync, _ResultMetric, value.device)
        if batch_size is None:
            batch_size = self.batch_size
            if batch_size is None:
                batch_size = 1
                if self.batch is not None and on_epoch and reduce == "mean":
                    batch_size = self.batch_size = extract_batch_size(self.batch)
        if metric.value.get_device() != value.get_device():  # ints: cheaper than comparing torch.device objects
            metric.value = metric.value.to(value.device)
        metric.update(value, batch_size)
        metric.has_reset = False

    def log_metric_object(self, fx: str, name: str, metric: Any, prog_bar: bool, logger: bool, on_step: bool,
                          on_epoch: bool, reduce: str, enable_graph: bool, add_dataloader_idx: bool) -> None:
        result = self._entry(fx, name, prog_bar, logger, on_step, on_epoch, reduce, enable_graph, add_dataloader_idx,
                             None, _MetricObjectResult, metric)
        result.update(metric)
        result.has_reset = False

    def metrics(self, on_step: bool, may_sync: bool = True) -> Tuple[dict, dict, dict]:
        """(callback, log, pbar) dicts of the current step (on_step) or epoch values. may_sync=False: leave out
        sync_dist epoch values not yet reduced (the caller may run on one rank only, e.g. the progress bar)."""
        callback: Dict[str, Tensor] = {}
        log: Dict[str, Tensor] = {}
        pbar: Dict[str, Tensor] = {}
        dl_idx = self.dataloader_idx
        training = self.training
        for metric in self.values():
            meta = metric.meta
            if metric.has_reset or meta.dataloader_idx != dl_idx:
                continue
            if on_step:
                if not meta.on_step:
                    continue
                value = metric.step_value
                forked = metric.names[1]
            else:
                if not meta.on_epoch:
                    continue
                if not may_sync and metric.computed is None and (
                        meta.sync is not None or (not metric.is_tensor and _distributed())):
                    continue  # compute() would be a collective (a torchmetrics Metric syncs its states itself)
                value = metric.compute()
                forked = metric.names[2]
            if value is None:
                continue
            if not meta.enable_graph:
                value = value.detach()
            if meta.logger:
                log[forked] = value
            if training or (meta.on_epoch and not on_step):
                callback[metric.names[0]] = value
                callback[forked] = value
            if meta.prog_bar:
                pbar[forked] = value
        return callback, log, pbar

    def reset(self, fx: Optional[str] = None, tensors_only: bool = False) -> None:
        """tensors_only: a new epoch's first log from `fx` starts its tensor values afresh; Metric objects are
        reset only with the whole collection (Lightning's reset(metrics=False, fx) / reset())."""
        for metric in self.values():
            if (fx is None or metric.meta.fx == fx) and not (tensors_only and not metric.is_tensor):
                metric.reset()


def to_scalars(metrics: Mapping[str, Any]) -> Dict[str, Any]:
    # host-device sync: loggers and the progress bar need Python numbers (called every log_every_n_steps
    # steps for loggers, at the bar's refresh rate for the bar, never per step otherwise)
    return {k: (v.item() if isinstance(v, Tensor) and v.numel() == 1 else v) for k, v in metrics.items()}


class MetricsHub:
    """Lightning's logger connector: moves logged values into the trainer's metric dicts and the loggers."""

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.first_loop_iter: Optional[bool] = None
        self.current_fx: Optional[str] = None
        self._callback: Dict[str, Tensor] = {}
        self._logged: Dict[str, Tensor] = {}
        self._pbar: Dict[str, Any] = {}
        self._pending: Optional[ResultCollection] = None  # collection whose batch-end snapshot is owed

    @property
    def should_update_logs(self) -> bool:
        """Whether this step's values go to the loggers: every `log_every_n_steps`-th step of the running loop
        (the optimizer steps in training, the batches in evaluation), and the last one when the fit stops."""
        trainer = self.trainer
        every = trainer._cfg.log_every_n_steps
        if not every:
            return False
        if trainer.training:
            step = trainer._batches_that_stepped + 1  # + 1: asked before the step's counters move
        elif trainer.sanity_checking or (trainer.validating and trainer.state.fn == "fit"):
            step = trainer.fit_loop.epoch_loop.val_loop.batch_progress.current.ready
        elif trainer.validating or trainer.testing or trainer.predicting:
            loop = trainer.validate_loop if trainer.validating else (
                trainer.test_loop if trainer.testing else trainer.predict_loop)
            step = loop.batch_progress.current.ready
        else:
            return True  # no loop running
        return step % every == 0 or trainer.should_stop

    # -- lazy batch-end snapshot -------------------------------------------------------------------
    def _flush(self) -> None:
        pending = self._pending
        if pending is not None:
            self._pending = None
            callback, log, pbar = pending.metrics(True)
            self._callback.update(callback)
            self._logged.update(log)
            self._pbar.update(pbar)

    def _update_from(self, results: Optional[ResultCollection]) -> None:
        self._flush()
        if results is not None:
            callback, log, pbar = results.metrics(self.first_loop_iter is not None)
            self._callback.update(callback)
            self._logged.update(log)
            self._pbar.update(pbar)

    # -- batch / epoch boundaries --------------------------------------------------------------------
    def on_batch_start(self, results: ResultCollection, batch: Any, dataloader_idx: Optional[int] = None) -> None:
        if self.first_loop_iter is None:
            self.first_loop_iter = True
        elif self.first_loop_iter is True:
            self.first_loop_iter = False
        if self._pending is not None and self._pending is not results:
            self._flush()
        results.batch = batch
        results.batch_size = None
        results.dataloader_idx = dataloader_idx

    def on_batch_end(self, results: ResultCollection) -> None:
        if self._pending is not None and self._pending is not results:
            self._flush()
        self._pending = results  # snapshot taken when someone looks, or before it could change
        results.batch = None
        results.batch_size = None

    def epoch_end_reached(self) -> None:
        self._flush()
        self.first_loop_iter = None

    def on_epoch_end(self, results: ResultCollection) -> None:
        self._update_from(results)
        self.current_fx = None

    def should_reset_tensors(self, fx: str) -> bool:
        return self.current_fx != fx and self.first_loop_iter in (None, True)

    def reset_fx(self, results: ResultCollection, fx: str) -> None:
        self._flush()
        results.reset(fx=fx, tensors_only=True)

    def reset_results(self, results: Optional[ResultCollection]) -> None:
        self._flush()
        if results is not None:
            results.reset()
        self.first_loop_iter = None
        self.current_fx = None

    def reset_metrics(self) -> None:
        self._pending = None
        self._callback = {}
        self._logged = {}
        self._pbar = {}

    # -- loggers -------------------------------------------------------------------------------------
    def log_metrics(self, metrics: Dict[str, Tensor], step: Optional[int] = None) -> None:
        trainer = self.trainer
        loggers = trainer.loggers
        if not loggers or not metrics:
            return
        self._logged.update(metrics)
        scalars = to_scalars(metrics)
        if step is None:
            step_metric = scalars.pop("step", None)
            if step_metric is not None:
                step = int(step_metric)
            else:
                scalars.setdefault("epoch", trainer.current_epoch)
                step = trainer._batches_that_stepped
        for logger in loggers:
            logger.log_metrics(metrics=scalars, step=step)
            logger.save()

    def log_eval_end_metrics(self, metrics: Dict[str, Tensor]) -> None:
        """The metrics of a whole validation/test run, sent to the loggers before on_{validation,test}_end."""
        if not self.trainer.sanity_checking:
            self.log_metrics(metrics)

    def update_train_step_metrics(self, results: ResultCollection, should_log: bool) -> None:
        if should_log and self.trainer.loggers:
            self._flush()
            self.log_metrics(results.metrics(True)[1])

    def update_train_epoch_metrics(self, results: ResultCollection) -> None:
        self._flush()
        if self.trainer.loggers:
            self.log_metrics(results.metrics(False)[1])
        self.reset_results(results)

    def update_eval_step_metrics(self, results: ResultCollection, step: int) -> None:
        if self.trainer.loggers:
            self._flush()
            self.log_metrics(results.metrics(True)[1], step=step)

    def update_eval_epoch_metrics(self, results: ResultCollection, sanity_checking: bool) -> Dict[str, Tensor]:
        if sanity_checking:
            return {}
        self._flush()
        callback, log, pbar = results.metrics(False)
        self._pbar.update(pbar)
        self._callback.update(callback)
        self._logged.update(log)
        return log

    # -- the trainer's properties --------------------------------------------------------------------
    def callback_metrics(self, results: Optional[ResultCollection]) -> Dict[str, Tensor]:
        self._flush()
        if results is not None:
            self._callback.update(results.metrics(self.first_loop_iter is not None)[0])
        return self._callback

    def logged_metrics(self, results: Optional[ResultCollection]) -> Dict[str, Tensor]:
        self._flush()
        if results is not None:
            self._logged.update(results.metrics(self.first_loop_iter is not None)[1])
        return self._logged

    def progress_bar_metrics(self, results: Optional[ResultCollection]) -> Dict[str, float]:
        self._flush()
        if results is not None:  # the bar draws on rank 0 only: it must not start a collective
            self._pbar.update(results.metrics(self.first_loop_iter is not None, may_sync=False)[2])
        self._pbar = to_scalars(self._pbar)
        return self._pbar

    def restore(self, callback: Dict[str, Tensor], logged: Dict[str, Tensor]) -> None:
        """Metrics computed elsewhere (rank 0 of a ddp_spawn run) become this trainer's."""
        self.reset_metrics()
        self._callback, self._logged = dict(callback), dict(logged)

    def teardown(self) -> None:
        self._flush()
        cpu = lambda d: {k: (v.cpu() if isinstance(v, Tensor) else v) for k, v in d.items()}  # noqa: E731
        self._callback = cpu(self._callback)
        self._logged = cpu(self._logged)
