"""ThroughputMonitor: log batches/samples/items (and FLOPs) per second for training, validation, test and predict.

Keys are Lightning's: "<stage>/<metric>" with stage "train", "validate", "test" or "predict" and the metric names of
fastlight.utilities.throughput.Throughput ("time", "batches", "samples", "device/batches_per_sec", ...).
Training time excludes the validation runs in between, as in Lightning.
"""
import time
from typing import Any, Callable, Dict, Optional

import torch

from fastlight.utilities.rank_zero import rank_zero_only, rank_zero_warn
from fastlight.utilities.throughput import Throughput

from . import _trainer_access as access
from .callback import Callback


class ThroughputMonitor(Callback):
    """Args:
        batch_size_fn: the number of samples in a batch.
        length_fn: the number of items (for example tokens) in a batch; gives "lengths" and "device/items_per_sec".
        **kwargs: passed to Throughput (window_size, separator).

    A `flops_per_batch` attribute on the LightningModule, read at every batch, gives the FLOPs rates.
    """

    def __init__(self, batch_size_fn: Callable[[Any], int], length_fn: Optional[Callable[[Any], int]] = None,
                 **kwargs: Any) -> None:
        if not callable(batch_size_fn):
            raise TypeError(f"ThroughputMonitor(batch_size_fn={batch_size_fn!r}) must be a function of the batch.")
        if length_fn is not None and not callable(length_fn):
            raise TypeError(f"ThroughputMonitor(length_fn={length_fn!r}) must be None or a function of the batch.")
        unknown = set(kwargs) - {"window_size", "separator"}
        if unknown:
            raise TypeError(f"ThroughputMonitor got unexpected keyword arguments {sorted(unknown)}; Throughput takes"
                            " `window_size` and `separator`.")
        self.kwargs = kwargs
        self.batch_size_fn = batch_size_fn
        self.length_fn = length_fn
        # theoretical device FLOPs: fastlight has no table of chips, so "device/mfu" is not logged
        self.available_flops: Optional[int] = None
        self._throughputs: Dict[str, Throughput] = {}
        self._t0s: Dict[str, float] = {}
        self._lengths: Dict[str, int] = {}
        self._samples: Dict[str, int] = {}
        self._batches: Dict[str, int] = {}
        self._eval_ready: Dict[str, int] = {}  # Lightning's evaluation batch_progress.total.ready, per stage
        self._eval_current = 0  # batch_progress.current.ready: the running evaluation's batches
        self._module_has_flops: Optional[bool] = None

    def _new_throughput(self, trainer: Any) -> Throughput:
        return Throughput(available_flops=self.available_flops, world_size=getattr(trainer, "world_size", 1),
                          **self.kwargs)

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if stage == "fit" and trainer.enable_validation:
            self._throughputs["validate"] = self._new_throughput(trainer)
        # the running stage of each entry point (Lightning reads trainer.state.stage, already set at setup)
        self._throughputs[_SETUP_STAGE[stage]] = self._new_throughput(trainer)

    def _start(self, trainer: Any) -> None:
        stage = _stage(trainer)
        if access.is_fitting(trainer) or stage not in self._samples:
            self._throughputs[stage].reset()
            self._lengths[stage] = self._samples[stage] = self._batches[stage] = 0
        self._t0s[stage] = time.perf_counter()
        self._eval_current = 0

    @torch.inference_mode()  # batch_size_fn / length_fn must not build graphs
    def _update(self, trainer: Any, pl_module: Any, batch: Any) -> None:
        stage = _stage(trainer)
        if access.root_device(trainer).type == "cuda":
            torch.cuda.synchronize()  # the clock must see the device's work done
        elapsed = time.perf_counter() - self._t0s[stage]
        if self.length_fn is not None:
            self._lengths[stage] += self.length_fn(batch)
        if self._module_has_flops is None:
            self._module_has_flops = hasattr(pl_module, "flops_per_batch")
            if not self._module_has_flops:
                rank_zero_warn(
                    "When using the `ThroughputMonitor`, you need to define a `flops_per_batch` attribute or property"
                    f" in {type(pl_module).__name__} to compute the FLOPs."
                )
        self._samples[stage] += self.batch_size_fn(batch)
        self._batches[stage] += 1
        self._throughputs[stage].update(
            time=elapsed, batches=self._batches[stage], samples=self._samples[stage],
            lengths=None if self.length_fn is None else self._lengths[stage],
            flops=pl_module.flops_per_batch if self._module_has_flops else None,
        )

    def _compute(self, trainer: Any, step: Optional[int] = None, eval_current: Optional[int] = None) -> None:
        if not _should_update_logs(trainer, eval_current):
            return
        stage = _stage(trainer)
        throughput = self._throughputs[stage]
        metrics = {f"{stage}{throughput.separator}{k}": v for k, v in throughput.compute().items()}
        access.log_metrics(trainer, metrics, step=step)

    def _eval_batch_end(self, trainer: Any, pl_module: Any, batch: Any) -> None:
        stage = _stage(trainer)
        self._eval_ready[stage] = self._eval_ready.get(stage, 0) + 1
        self._eval_current += 1
        self._update(trainer, pl_module, batch)
        self._compute(trainer, self._eval_ready[stage], self._eval_current)

    @rank_zero_only
    def on_train_start(self, trainer: Any, *_: Any) -> None:
        self._start(trainer)

    def on_train_epoch_start(self, trainer: Any, *_: Any) -> None:
        self._eval_ready["validate"] = 0  # the fit's validation counters start over each epoch

    @rank_zero_only
    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *_: Any) -> None:
        self._update(trainer, pl_module, batch)
        if not trainer.fit_loop._should_accumulate():
            self._compute(trainer)

    @rank_zero_only
    def on_validation_start(self, trainer: Any, *_: Any) -> None:
        if trainer.sanity_checking:
            return
        self._start(trainer)

    @rank_zero_only
    def on_validation_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *_: Any,
                                **__: Any) -> None:
        if trainer.sanity_checking:
            return
        self._eval_batch_end(trainer, pl_module, batch)

    @rank_zero_only
    def on_validation_end(self, trainer: Any, *_: Any) -> None:
        if trainer.sanity_checking or not access.is_fitting(trainer):
            return
        # move the training clock's origin past the validation run, so training rates leave it out
        train_times = self._throughputs["train"].times
        val_times = self._throughputs["validate"].times
        train_finished = self._t0s["train"] + (train_times[-1] if train_times else 0.0)
        gap = self._t0s["validate"] - train_finished
        self._t0s["train"] += gap + (val_times[-1] if val_times else 0.0)

    @rank_zero_only
    def on_test_start(self, trainer: Any, *_: Any) -> None:
        self._start(trainer)

    @rank_zero_only
    def on_test_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *_: Any, **__: Any) -> None:
        self._eval_batch_end(trainer, pl_module, batch)

    @rank_zero_only
    def on_predict_start(self, trainer: Any, *_: Any) -> None:
        self._start(trainer)

    @rank_zero_only
    def on_predict_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, *_: Any,
                             **__: Any) -> None:
        self._eval_batch_end(trainer, pl_module, batch)


_SETUP_STAGE = {"fit": "train", "validate": "validate", "test": "test", "predict": "predict"}


def _stage(trainer: Any) -> str:
    """trainer.state.stage as Lightning's RunningStage value; fastlight's fit keeps "train" during validation."""
    if getattr(trainer, "validating", False) and access.is_fitting(trainer) and not trainer.sanity_checking:
        return "validate"
    stage = trainer.state.stage
    return getattr(stage, "value", stage)


def _should_update_logs(trainer: Any, eval_current: Optional[int]) -> bool:
    """Lightning's should_update_logs: training counts batches that stepped; evaluation the running evaluation's
    batches."""
    if eval_current is None:
        return access.should_update_logs(trainer)
    every = getattr(trainer, "log_every_n_steps", 50)
    return every != 0 and eval_current % every == 0
