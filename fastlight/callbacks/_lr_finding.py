"""The learning-rate range test behind `LearningRateFinder` and `Tuner.lr_find` (Lightning 2.6's behaviour).

The run, inside the fit that is starting (`on_fit_start`):
    temporary checkpoint (module, optimizer, scheduler, loop counters, callback states) in default_root_dir
    the user's callbacks and loggers set aside; a recording callback (`_LossRecorder`) alone
    the optimizer's param groups set to min_lr, a per-step schedule installed on it (exponential or linear up to
    max_lr over num_training steps), max_steps = global_step + num_training, limit_val_batches = num_training
    the fit loop runs; the recorder keeps the lr of each step and the smoothed loss, and stops on divergence
    everything put back; the checkpoint restored and deleted; the train dataloader set up afresh
    update_attr: the suggestion written to `lr`/`learning_rate` (module or hparams) and to the optimizer

The schedule drives `trainer.optimizers[0]`: with fused=True that is the fused optimizer the loop steps, which reads
its param groups' lr at every step.
"""
import os
import uuid
from typing import Any, Dict, List, Optional

import torch
from torch.optim.lr_scheduler import LRScheduler

from fastlight.callbacks.callback import Callback
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.parsing import lightning_hasattr, lightning_setattr
from fastlight.utilities.rank_zero import module_logger, rank_zero_warn
from fastlight.utilities.types import LRSchedulerConfig

log = module_logger(__name__)

_LR_ATTR_NAMES = ("lr", "learning_rate")


def _lr_attr_name(model: Any, attr_name: str = "") -> str:
    """The attribute update_attr writes: `attr_name` when given (it must exist), else `lr` or `learning_rate`."""
    if attr_name:
        if not lightning_hasattr(model, attr_name):
            raise AttributeError(
                f"The attribute name for the learning rate was set to {attr_name}, but could not find this as a field"
                " in `model` or `model.hparams`."
            )
        return attr_name
    for name in _LR_ATTR_NAMES:
        if lightning_hasattr(model, name):
            return name
    raise AttributeError(
        "When using the learning rate finder, either `model` or `model.hparams` should have one of these fields:"
        f" {_LR_ATTR_NAMES}. If your model has a different name for the learning rate, set it with"
        " `.lr_find(attr_name=...)`."
    )


class _RangeTestLR(LRScheduler):
    """Step k of n (k = last_epoch + 1) sets each group's lr from its base (min_lr) towards `end_lr`; the first
    step keeps the base. `lr` is the list last computed (what the next optimizer step uses)."""

    def __init__(self, optimizer: torch.optim.Optimizer, end_lr: float, num_iter: int) -> None:
        self.end_lr = end_lr
        self.num_iter = num_iter
        self._lr: List[float] = []
        super().__init__(optimizer, -1)

    def _at(self, base_lr: float, fraction: float) -> float:
        raise NotImplementedError

    def get_lr(self) -> List[float]:
        fraction = (self.last_epoch + 1) / self.num_iter
        if self.last_epoch > 0:
            lrs = [self._at(base, fraction) for base in self.base_lrs]
        else:
            lrs = list(self.base_lrs)
        self._lr = lrs
        return lrs

    @property
    def lr(self) -> List[float]:
        return self._lr


class _ExponentialRangeLR(_RangeTestLR):
    def _at(self, base_lr: float, fraction: float) -> float:
        return base_lr * (self.end_lr / base_lr) ** fraction


class _LinearRangeLR(_RangeTestLR):
    def _at(self, base_lr: float, fraction: float) -> float:
        return base_lr + fraction * (self.end_lr - base_lr)


class _LRFinder:
    """What `lr_find` returns: `results` ({"lr": [...], "loss": [...]}, the loss smoothed), `suggestion()`,
    `plot()`."""

    def __init__(self, mode: str, lr_min: float, lr_max: float, num_training: int) -> None:
        if mode not in ("linear", "exponential"):
            raise ValueError(f"`mode` should be either 'linear' or 'exponential', got {mode!r}")
        self.mode = mode
        self.lr_min = lr_min
        self.lr_max = lr_max
        self.num_training = num_training
        self.results: Dict[str, Any] = {}
        self._optimal_idx: Optional[int] = None
        self._total_batch_idx = 0

    def _install_schedule(self, trainer: Any) -> None:
        """Every param group of the one optimizer starts at lr_min; the range-test schedule steps it every batch."""
        optimizers = trainer.optimizers
        if len(optimizers) != 1:
            raise MisconfigurationException(
                f"`model.configure_optimizers()` returned {len(optimizers)}, but learning rate finder only works with"
                " single optimizer"
            )
        optimizer = optimizers[0]
        for group in optimizer.param_groups:
            group["lr"] = self.lr_min
            group["initial_lr"] = self.lr_min
        schedule_cls = _LinearRangeLR if self.mode == "linear" else _ExponentialRangeLR
        scheduler = schedule_cls(optimizer, self.lr_max, self.num_training)
        trainer.lr_scheduler_configs = [LRSchedulerConfig(scheduler, interval="step")]

    def plot(self, suggest: bool = False, show: bool = False, ax: Any = None) -> Any:
        """Loss against learning rate (log x-axis in exponential mode); `suggest` marks the suggestion in red."""
        try:
            import matplotlib.pyplot as plt
        except ModuleNotFoundError as exc:
            raise MisconfigurationException(
                "To use the `plot` method, you must have Matplotlib installed. Install it by running"
                " `pip install -U matplotlib`."
            ) from exc
        lrs, losses = self.results["lr"], self.results["loss"]
        if ax is None:
            fig, ax = plt.subplots()
        else:
            fig = ax.figure
        ax.plot(lrs, losses)
        if self.mode == "exponential":
            ax.set_xscale("log")
        ax.set_xlabel("Learning rate")
        ax.set_ylabel("Loss")
        if suggest:
            self.suggestion()
            if self._optimal_idx:
                ax.plot(lrs[self._optimal_idx], losses[self._optimal_idx], markersize=10, marker="o", color="red")
        if show:
            plt.show()
        return fig

    def suggestion(self, skip_begin: int = 10, skip_end: int = 1) -> Optional[float]:
        """The lr where the (finite) smoothed loss falls fastest, the first `skip_begin` and last `skip_end` points
        left out; None (and an error logged) when fewer than two points remain."""
        all_losses, all_lrs = self.results["loss"], self.results["lr"]
        stop = len(all_losses) - skip_end  # skip_end=0 keeps the last point
        indices = torch.arange(len(all_losses))[skip_begin:stop]
        losses = torch.tensor(all_losses[skip_begin:stop])
        lrs = torch.tensor(all_lrs[skip_begin:stop])
        finite = torch.isfinite(losses)
        losses, lrs, indices = losses[finite], lrs[finite], indices[finite]
        if len(losses) < 2:  # torch.gradient needs two points
            log.error(
                "Failed to compute suggestion for learning rate because there are not enough points. Increase the loop"
                " iteration limits or the size of your dataset/dataloader."
            )
            self._optimal_idx = None
            return None
        slopes = torch.gradient(losses, spacing=[lrs])[0]
        self._optimal_idx = int(indices[int(torch.argmin(slopes))])
        return all_lrs[self._optimal_idx]


class _LossRecorder(Callback):
    """The only callback during the range test: the lr each stepping batch uses, its loss smoothed with an
    exponential moving average (bias-corrected), and a stop when the smoothed loss passes
    early_stop_threshold * best."""

    def __init__(self, num_training: int, early_stop_threshold: Optional[float] = 4.0, show_progress: bool = False,
                 beta: float = 0.98) -> None:
        self.num_training = num_training
        self.early_stop_threshold = early_stop_threshold
        self.beta = beta
        self.show_progress = show_progress
        self.lrs: List[float] = []
        self.losses: List[float] = []
        self.avg_loss = 0.0
        self.best_loss = 0.0
        self._bar: Any = None

    def _steps(self, trainer: Any, batch_idx: int) -> bool:
        return (batch_idx + 1) % trainer.accumulate_grad_batches == 0

    def on_train_batch_start(self, trainer: Any, pl_module: Any, batch: Any, batch_idx: int) -> None:
        if not self._steps(trainer, batch_idx):
            return
        if self.show_progress and self._bar is None:
            from tqdm import tqdm

            self._bar = tqdm(desc="Finding best initial lr", total=self.num_training)
        self.lrs.append(trainer.lr_scheduler_configs[0].scheduler.lr[0])

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not self._steps(trainer, batch_idx):
            return
        if not outputs:  # training_step returned None: a NaN keeps lrs and losses aligned (skipped by suggestion)
            self.losses.append(float("nan"))
            return
        if self._bar is not None:
            self._bar.update()
        loss = outputs if isinstance(outputs, torch.Tensor) else outputs["loss"]
        value = loss.item()  # host sync: the tuner needs the number now (divergence check)
        step = trainer.global_step
        self.avg_loss = self.beta * self.avg_loss + (1 - self.beta) * value
        smoothed = self.avg_loss / (1 - self.beta ** (step + 1))
        if self.early_stop_threshold is not None and step > 1 and smoothed > self.early_stop_threshold * self.best_loss:
            trainer.should_stop = True
            if self._bar is not None:
                self._bar.close()
        trainer.should_stop = trainer.strategy.broadcast(trainer.should_stop)
        if smoothed < self.best_loss or step == 1:
            self.best_loss = smoothed
        self.losses.append(smoothed)


def lr_find(trainer: Any, model: Any, min_lr: float = 1e-8, max_lr: float = 1.0, num_training: int = 100,
            mode: str = "exponential", early_stop_threshold: Optional[float] = 4.0, update_attr: bool = False,
            attr_name: str = "", weights_only: Optional[bool] = None) -> Optional[_LRFinder]:
    """Run the range test in the fit that is starting, put the run back as it was (from a temporary checkpoint, read
    with `weights_only`: False for a module whose hyperparameters hold arbitrary objects), return the results."""
    if trainer.fast_dev_run:
        rank_zero_warn("Skipping learning rate finder since `fast_dev_run` is enabled.")
        return None
    if update_attr:
        attr_name = _lr_attr_name(model, attr_name)

    ckpt_path = trainer.strategy.broadcast(os.path.join(trainer.default_root_dir, f".lr_find_{uuid.uuid4()}.ckpt"))
    trainer.save_checkpoint(ckpt_path)
    start_step = trainer.global_step
    cfg = trainer._cfg
    fit_loop = trainer.fit_loop
    saved = {
        "optimizers": trainer.optimizers, "lr_scheduler_configs": trainer.lr_scheduler_configs,
        "callbacks": trainer.callbacks, "loggers": trainer.loggers, "max_steps": cfg.max_steps,
        "limit_val_batches": cfg.limit_val_batches, "loop": fit_loop.snapshot(),
    }
    recorder = _LossRecorder(num_training, early_stop_threshold, show_progress=trainer.progress_bar_callback is not None)
    finder = _LRFinder(mode, min_lr, max_lr, num_training)
    finished = False
    try:
        trainer.lr_scheduler_configs = []
        trainer.callbacks = [recorder]
        trainer.loggers = []
        cfg.max_steps = start_step + num_training
        cfg.limit_val_batches = num_training
        finder._install_schedule(trainer)
        trainer._resolve_hooks()  # hooks are resolved once per run: now only the recorder listens
        fit_loop.load_snapshot(saved["loop"])
        fit_loop.run()
        if trainer.global_step != start_step + num_training:
            log.info(f"LR finder stopped early after {trainer.global_step} steps due to diverging loss.")
        finder.results = {"lr": recorder.lrs, "loss": recorder.losses}
        finder._total_batch_idx = fit_loop.total_batch_idx
        finished = True
    finally:
        trainer.optimizers = saved["optimizers"]
        trainer.lr_scheduler_configs = saved["lr_scheduler_configs"]
        trainer.callbacks = saved["callbacks"]
        trainer.loggers = saved["loggers"]
        cfg.max_steps = saved["max_steps"]
        cfg.limit_val_batches = saved["limit_val_batches"]
        trainer._resolve_hooks()
        # weights, optimizer state (its lr too), scheduler and callback states as they were
        trainer._restore_tuning_checkpoint(ckpt_path, weights_only)
        trainer.strategy.remove_checkpoint(ckpt_path)
        fit_loop.load_snapshot(saved["loop"])
        trainer.validate_loop.reset_data()
        trainer.val_dataloaders = None
        fit_loop.reset_data()
        fit_loop.setup_data()
    finder.results = trainer.strategy.broadcast(finder.results)

    # after the restore, so the suggestion is what the training that follows uses
    if update_attr and finished:
        lr = finder.suggestion()
        if lr is not None:
            lightning_setattr(model, attr_name, lr)
            for optimizer in trainer.optimizers or []:
                for group in optimizer.param_groups:
                    group["lr"] = lr
            log.info(f"Learning rate set to {lr}")
    return finder
