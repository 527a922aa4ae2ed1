"""The checkpoint dict: Lightning 2.6's layout, written by fastlight and read back from either framework.

docs/checkpoint_format.md describes the keys. In short:

    epoch, global_step, pytorch-lightning_version, state_dict, loops,
    callbacks, optimizer_states, lr_schedulers, MixedPrecision     (left out when weights_only)
    hparams_name, hyper_parameters, datamodule_hparams_name, datamodule_hyper_parameters, <DataModule qualname>
    fastlight_version

The loop progress ("loops") uses Lightning's counters (ready/started/processed/completed, total and current) so that
Lightning's fit loop restores a fastlight checkpoint at the same point and vice versa. `LoopProgress` holds them; the
fastlight loop increments them at the points listed in `FitProgress`'s docstring (plain integer adds).

Trainer attributes read by `dump_checkpoint` / `restore_*` (Lightning's public names unless noted):
    lightning_module, datamodule, callbacks, optimizers, lr_scheduler_configs (each with .scheduler), current_epoch,
    global_step, max_epochs, state.fn, loop_progress (fastlight: a LoopProgress), scaler (fastlight: a
    torch.amp.GradScaler-compatible object or None).
"""
import sys
from copy import deepcopy
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from fastlight.core.saving import FASTLIGHT_CHECKPOINT_KEYS, load_module_weights
from fastlight.loops.progress import (
    _BatchProgress,
    _OptimizationProgress,
    _Progress,
    _ReadyCompletedTracker,
    _SchedulerProgress,
)
from fastlight.utilities.exceptions import _MisconfigurationValueError
from fastlight.utilities.rank_zero import rank_zero_warn

# The Lightning checkpoint format version written under "pytorch-lightning_version". Lightning runs its legacy
# migrations on checkpoints older than its own version, so this must name the format we write (not fastlight's).
LIGHTNING_FORMAT_VERSION = "2.6.0"
SCALER_KEY = "MixedPrecision"  # Lightning's MixedPrecision plugin state (GradScaler.state_dict())
LEGACY_SCALER_KEY = "native_amp_scaling_state"
MODULE_HPARAMS_NAME, MODULE_HPARAMS_KEY = "hparams_name", "hyper_parameters"
DATAMODULE_HPARAMS_NAME, DATAMODULE_HPARAMS_KEY = "datamodule_hparams_name", "datamodule_hyper_parameters"
FASTLIGHT_VERSION_KEY = FASTLIGHT_CHECKPOINT_KEYS[0]


# ----------------------------------------------------------------------------------------------------------------------
# progress counters: Lightning's dataclasses (fastlight/loops/progress.py), grouped the way the checkpoint lays them out
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class FitProgress:
    """Lightning's fit-loop counters. Where Lightning's loop moves them (the fastlight loop does the same):

    epoch start:   epoch.increment_ready(); on_train_epoch_start hooks; epoch.increment_started();
                   batch/scheduler/optim .reset_on_run(); val_batch.total.reset()
    each batch:    batch.is_last_batch = <no batch after this one>; batch.increment_ready();
                   on_train_batch_start hooks; batch.increment_started(); training step (optim.optimizer:
                   zero_grad ready/started around on_before_zero_grad, completed after zero_grad; step ready before
                   the optimizer_step hook (so before training_step), completed after it; manual optimization:
                   manual_step ready/completed around each optimizer.step()); batch.increment_processed();
                   "step"-interval schedulers (scheduler.increment_ready/completed around each .step());
                   on_train_batch_end hooks; batch.increment_completed();
                   validation if due (val_batch counts its batches); batches_that_stepped += 1 when the optimizer
                   stepped (not while accumulating)
    epoch end:     epoch.increment_processed(); on_train_epoch_end hooks; "epoch"-interval schedulers;
                   epoch.increment_completed()

    These are the only store of the fit's counters: trainer.current_epoch is epoch.current.completed,
    trainer.global_step is optim's step.total.completed (manual optimization: manual_step.total.completed).
    """

    epoch: _Progress = field(default_factory=_Progress)
    batch: _BatchProgress = field(default_factory=_BatchProgress)
    scheduler: _SchedulerProgress = field(default_factory=_SchedulerProgress)
    optim: _OptimizationProgress = field(default_factory=_OptimizationProgress)
    manual_step: _Progress = field(default_factory=lambda: _Progress.from_defaults(_ReadyCompletedTracker))
    val_batch: _BatchProgress = field(default_factory=_BatchProgress)
    batches_that_stepped: int = 0

    @property
    def current_epoch(self) -> int:
        return self.epoch.current.completed

    @property
    def global_step(self) -> int:
        """Optimizer steps of either kind (a run uses one; the other keeps what a checkpoint gave it)."""
        return self.optim.optimizer.step.total.completed + self.manual_step.total.completed

    def state_dict(self) -> Dict[str, Any]:
        return {
            "state_dict": {},
            "epoch_loop.state_dict": {"_batches_that_stepped": self.batches_that_stepped},
            "epoch_loop.batch_progress": self.batch.state_dict(),
            "epoch_loop.scheduler_progress": self.scheduler.state_dict(),
            "epoch_loop.automatic_optimization.state_dict": {},
            "epoch_loop.automatic_optimization.optim_progress": self.optim.state_dict(),
            "epoch_loop.manual_optimization.state_dict": {},
            "epoch_loop.manual_optimization.optim_step_progress": self.manual_step.state_dict(),
            "epoch_loop.val_loop.state_dict": {},
            "epoch_loop.val_loop.batch_progress": self.val_batch.state_dict(),
            "epoch_progress": self.epoch.state_dict(),
        }

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.batches_that_stepped = state.get("epoch_loop.state_dict", {}).get("_batches_that_stepped", 0)
        self.batch.load_state_dict(state["epoch_loop.batch_progress"])
        self.scheduler.load_state_dict(state["epoch_loop.scheduler_progress"])
        self.optim.load_state_dict(state["epoch_loop.automatic_optimization.optim_progress"])
        self.manual_step.load_state_dict(state["epoch_loop.manual_optimization.optim_step_progress"])
        self.val_batch.load_state_dict(state["epoch_loop.val_loop.batch_progress"])
        self.epoch.load_state_dict(state["epoch_progress"])

    @classmethod
    def at_epoch_end(cls, epochs_completed: int, global_step: int, batches_per_epoch: int = 0) -> "FitProgress":
        """Counters of a run stopped cleanly after `epochs_completed` epochs (for trainers without live counters)."""

        p = cls()
        p.epoch.increment_by(epochs_completed)
        p.optim.optimizer.step.total.increment_by(global_step)
        p.optim.optimizer.zero_grad.total.increment_by(global_step)
        if epochs_completed and batches_per_epoch:
            p.batch.total.increment_by(batches_per_epoch * epochs_completed)
            p.batch.current.increment_by(batches_per_epoch)
            p.batch.is_last_batch = True
        p.batches_that_stepped = global_step
        return p


@dataclass
class EvalProgress:
    """validate/test/predict loop counters (batch ready/started/processed/completed per batch; the predict loop's
    have no is_last_batch, as in Lightning's format)."""

    batch: _Progress = field(default_factory=_BatchProgress)

    def state_dict(self) -> Dict[str, Any]:
        return {"state_dict": {}, "batch_progress": self.batch.state_dict()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        bp = state["batch_progress"]
        if isinstance(self.batch, _BatchProgress) and "is_last_batch" not in bp:
            bp = {**bp, "is_last_batch": False}
        self.batch.load_state_dict(bp)


@dataclass
class LoopProgress:
    """Everything under the checkpoint's "loops" key. The Trainer holds one as `trainer.loop_progress`."""

    fit: FitProgress = field(default_factory=FitProgress)
    validate: EvalProgress = field(default_factory=EvalProgress)
    test: EvalProgress = field(default_factory=EvalProgress)
    predict: EvalProgress = field(default_factory=lambda: EvalProgress(_Progress()))

    def state_dict(self) -> Dict[str, Any]:
        return {
            "fit_loop": self.fit.state_dict(),
            "validate_loop": self.validate.state_dict(),
            "test_loop": self.test.state_dict(),
            "predict_loop": self.predict.state_dict(),
        }

    def load_state_dict(self, state: Dict[str, Any], stage: str = "fit") -> None:
        """Load the part of `state` the running stage uses (Lightning restores only that loop)."""
        key = {"fit": "fit_loop", "validate": "validate_loop", "test": "test_loop", "predict": "predict_loop"}[stage]
        if key not in state:
            raise KeyError(f"The checkpoint's 'loops' has no {key!r} (it has {sorted(state)})")
        getattr(self, stage).load_state_dict(state[key])


# ----------------------------------------------------------------------------------------------------------------------
# where a restored fit continues
# ----------------------------------------------------------------------------------------------------------------------
@dataclass
class ResumePoint:
    """Where fit continues after restoring `FitProgress` (Lightning 2.6's restart rules).

    epoch: the epoch to run next (its index); batch_idx: the first batch index to run in it (0 = from the start);
    run_epoch_start_hooks: False when the epoch had already started before the save (Lightning does not call
    on_train_epoch_start again); global_step / batches_that_stepped: the counters to continue from.
    Lightning does not fast-forward a non-resumable dataloader: mid-epoch it restarts iteration but numbers the
    batches from batch_idx and stops at the epoch's length; fastlight may skip the first batch_idx batches instead.
    """

    epoch: int
    batch_idx: int
    global_step: int
    batches_that_stepped: int
    run_epoch_start_hooks: bool
    mid_epoch: bool


def resume_point(progress: FitProgress, num_training_batches: float, accumulate_grad_batches: int = 1,
                 replay_tail: bool = False, iteration_based: bool = False) -> ResumePoint:
    """Interpret restored counters the way Lightning's fit loop does, and normalize them for continuing.

    Mutates `progress` like Lightning's reset on restart (partial events are dropped, the epoch is marked done when
    the save happened after its last batch). replay_tail (an exact resume of a save in on_train_batch_end): the
    epoch's last batch stays in its epoch, whose end the resumed run then runs (resume_state.finish).
    iteration_based (max_steps set): Lightning restarts even from an epoch-end save, inside that epoch."""
    e = progress.epoch.total
    b = progress.batch
    unfinished = e.ready != e.processed or e.started != e.processed  # type: ignore[attr-defined]
    restarted_on_epoch_start = unfinished and e.started == e.ready - 1 and e.processed == e.started and e.completed == e.processed  # type: ignore[attr-defined]
    restarted_mid_epoch = unfinished and e.started == e.ready and e.processed == e.started - 1 and e.completed == e.processed  # type: ignore[attr-defined]
    epoch_end_pending = e.started == e.ready and e.processed == e.started and e.completed == e.processed - 1  # type: ignore[attr-defined]
    bt = b.total
    on_train_batch_end = restarted_mid_epoch and bt.started == bt.ready and bt.processed == bt.started and bt.completed == bt.processed - 1  # type: ignore[attr-defined]
    on_last = restarted_mid_epoch and bt.started == bt.ready and bt.processed == bt.started and bt.completed == bt.processed  # type: ignore[attr-defined]
    batches_that_stepped = progress.batches_that_stepped

    if restarted_on_epoch_start:
        progress.epoch.reset_on_restart()
        return ResumePoint(progress.epoch.current.completed, 0, progress.global_step, batches_that_stepped, True, False)
    if epoch_end_pending and iteration_based and not b.is_last_batch and b.current.completed < num_training_batches:
        # saved in on_train_epoch_end of an epoch that max_steps cut short: Lightning goes on inside that epoch with
        # its next batch (no new epoch start), and ends it again
        b.reset_on_restart()
        progress.optim.reset_on_restart()
        progress.scheduler.reset_on_restart()
        return ResumePoint(progress.epoch.current.completed, b.current.completed, progress.global_step,
                           batches_that_stepped, False, True)
    if epoch_end_pending:
        # saved in on_train_epoch_end (the default checkpoint): that epoch is complete
        progress.epoch.increment_completed()
        return ResumePoint(progress.epoch.current.completed, 0, progress.global_step, batches_that_stepped, True, False)
    if restarted_mid_epoch:
        ready = b.current.ready
        # Lightning's `not _should_accumulate()`: an accumulation boundary or the epoch's last batch
        stepped_here = ready % max(1, accumulate_grad_batches) == 0 or ready == num_training_batches or b.is_last_batch
        if stepped_here:
            # counted after the hooks that saved the checkpoint (Lightning: in its epoch-loop reset, or, saved after
            # the batch completed, in the batch-less first iteration that skips the validation already run)
            batches_that_stepped += 1
        if on_train_batch_end:
            b.increment_completed()
        b.reset_on_restart()
        progress.optim.reset_on_restart()
        progress.scheduler.reset_on_restart()
        progress.batches_that_stepped = batches_that_stepped
        if on_train_batch_end and not replay_tail and (b.is_last_batch or b.current.completed >= num_training_batches):
            # saved in on_train_batch_end of the epoch's last batch: Lightning moves on to the next epoch (saved
            # after it, e.g. in a validation, the epoch still ends with its on_train_epoch_end hooks)
            progress.epoch.increment_processed()
            progress.epoch.increment_completed()
            # and that epoch's per-epoch counters start over, as at a new epoch
            b.reset_on_run()
            progress.scheduler.reset_on_run()
            progress.optim.reset_on_run()
            progress.val_batch.total.reset()
            return ResumePoint(progress.epoch.current.completed, 0, progress.global_step, batches_that_stepped, True, False)
        return ResumePoint(progress.epoch.current.completed, b.current.completed, progress.global_step, batches_that_stepped, False, True)
    # clean state (all counters equal): the next epoch from the start
    return ResumePoint(progress.epoch.current.completed, 0, progress.global_step, batches_that_stepped, True, False)


# ----------------------------------------------------------------------------------------------------------------------
# dump / restore
# ----------------------------------------------------------------------------------------------------------------------
def _fastlight_version() -> str:
    import fastlight

    return getattr(fastlight, "__version__", "0")


def _loop_progress(trainer: Any) -> LoopProgress:
    progress = getattr(trainer, "loop_progress", None)
    if progress is not None:
        return progress
    # a trainer without live counters: describe a clean stop at an epoch boundary
    n = getattr(trainer, "num_training_batches", 0)
    n = int(n) if isinstance(n, (int, float)) and n != float("inf") else 0
    return LoopProgress(fit=FitProgress.at_epoch_end(trainer.current_epoch, trainer.global_step, n))


def _is_omegaconf_container(value: Any) -> bool:
    omegaconf = sys.modules.get("omegaconf")  # imported by whoever made the container
    return omegaconf is not None and isinstance(value, omegaconf.Container)


def _hparams_of(obj: Any) -> Optional[Any]:
    """The hparams to store: a plain dict, or an omegaconf container kept as it is (as Lightning stores it)."""
    hparams = getattr(obj, "hparams", None)
    if not hparams:
        return None
    return hparams if _is_omegaconf_container(hparams) else dict(hparams)


def dump_checkpoint(trainer: Any, weights_only: bool = False, call_hooks: bool = True) -> Dict[str, Any]:
    """Build the checkpoint dict for `trainer`'s current state (Lightning's `_CheckpointConnector.dump_checkpoint`)."""
    model = trainer.lightning_module
    datamodule = getattr(trainer, "datamodule", None)
    checkpoint: Dict[str, Any] = {
        "epoch": trainer.current_epoch,
        "global_step": trainer.global_step,
        "pytorch-lightning_version": LIGHTNING_FORMAT_VERSION,
        "state_dict": model.state_dict(),
        "loops": _loop_progress(trainer).state_dict(),
    }
    if not weights_only:
        states = {}
        for cb in getattr(trainer, "callbacks", None) or []:
            state = cb.state_dict()
            if state:
                states[cb.state_key] = state
        checkpoint["callbacks"] = states
        checkpoint["optimizer_states"] = [opt.state_dict() for opt in trainer.optimizers]
        checkpoint["lr_schedulers"] = [cfg.scheduler.state_dict() for cfg in trainer.lr_scheduler_configs]
        scaler = getattr(trainer, "scaler", None)
        if scaler is not None:
            scaler_state = scaler.state_dict()
            if scaler_state:
                checkpoint[SCALER_KEY] = scaler_state
    for obj, name_key, hp_key in ((model, MODULE_HPARAMS_NAME, MODULE_HPARAMS_KEY), (datamodule, DATAMODULE_HPARAMS_NAME, DATAMODULE_HPARAMS_KEY)):
        hparams = _hparams_of(obj) if obj is not None else None
        if hparams:
            # the class's own keys (LightningModule.CHECKPOINT_HYPER_PARAMS_*), which a subclass may change
            name_key = getattr(obj, "CHECKPOINT_HYPER_PARAMS_NAME", name_key)
            hp_key = getattr(obj, "CHECKPOINT_HYPER_PARAMS_KEY", hp_key)
            if hasattr(obj, "_hparams_name"):
                checkpoint[name_key] = obj._hparams_name
            checkpoint[hp_key] = hparams
            if _is_omegaconf_container(hparams):  # the type to rebuild it with (Lightning's CHECKPOINT_HYPER_PARAMS_TYPE)
                type_key = "hparams_type" if obj is model else "datamodule_hparams_type"
                checkpoint[getattr(obj, "CHECKPOINT_HYPER_PARAMS_TYPE", type_key)] = type(hparams)
    if datamodule is not None and hasattr(datamodule, "state_dict"):
        dm_state = trainer._call_datamodule("state_dict")
        if dm_state:
            checkpoint[type(datamodule).__qualname__] = dm_state
    # fastlight's own entries go in after the hooks: on_save_checkpoint sees the dict Lightning would pass
    extras: Dict[str, Any] = {FASTLIGHT_VERSION_KEY: _fastlight_version()}
    fit_loop = getattr(trainer, "fit_loop", None)
    if fit_loop is not None and hasattr(fit_loop, "_iter_record"):
        from fastlight.trainer import resume_state

        loader_states = resume_state.loader_states(fit_loop)
        if loader_states:  # Lightning's place for stateful loaders' states
            checkpoint["loops"]["fit_loop"]["state_dict"]["combined_loader"] = loader_states
        if not weights_only:
            # every rank's RNG and loader state (a gather under DDP), taken before the hooks run
            entry = resume_state.dump(trainer)
            if entry is not None:
                extras[resume_state.RESUME_KEY] = entry
    if call_hooks:
        # the hook being run, for `self.log` (which refuses to log in it) and the profiler
        tracks_fx = "_current_fx_name" in getattr(model, "__dict__", {})  # a LightningModule
        prev_fx = model.__dict__["_current_fx_name"] if tracks_fx else None
        if tracks_fx:
            model.__dict__["_current_fx_name"] = "on_save_checkpoint"
        try:
            if not weights_only:
                for cb in getattr(trainer, "callbacks", None) or []:
                    cb.on_save_checkpoint(trainer, model, checkpoint)
            hook = getattr(model, "on_save_checkpoint", None)
            if hook is not None:
                hook(checkpoint)
        finally:
            if tracks_fx:
                model.__dict__["_current_fx_name"] = prev_fx
    # a new dict: the one the hooks got (and may hold on to) stays as Lightning would have passed it
    return {**checkpoint, **extras}


def pop_fastlight_entries(checkpoint: Dict[str, Any]) -> Dict[str, Any]:
    """Take fastlight's own top-level entries out of a checkpoint read from a file, before any hook sees it (the
    on_load_checkpoint hooks get the keys Lightning would pass them); returns them."""
    return {key: checkpoint.pop(key) for key in FASTLIGHT_CHECKPOINT_KEYS if key in checkpoint}


def restore_modules_and_callbacks(trainer: Any, checkpoint: Dict[str, Any], strict: Optional[bool] = None,
                                  source: str = "the checkpoint") -> None:
    """First half of a restore, after the setup hooks, in Lightning's order: module (on_load_checkpoint, then
    weights), datamodule state, then callbacks (on_load_checkpoint for all, then load_state_dict by state_key)."""
    model = trainer.lightning_module
    load_module_weights(model, checkpoint, strict=strict, source=source)

    datamodule = getattr(trainer, "datamodule", None)
    if datamodule is not None:
        key = type(datamodule).__qualname__
        if key in checkpoint and hasattr(datamodule, "load_state_dict"):
            trainer._call_datamodule("load_state_dict", checkpoint[key])

    callbacks = getattr(trainer, "callbacks", None) or []
    states = checkpoint.get("callbacks")
    if states is None:
        return
    for cb in callbacks:
        cb.on_load_checkpoint(trainer, model, checkpoint)
    unknown = set(states) - {cb.state_key for cb in callbacks}
    if unknown:
        rank_zero_warn(
            "Be aware that when using `ckpt_path`, callbacks used to create the checkpoint need to be provided during"
            f" `Trainer` instantiation. Please add the following callbacks: {sorted(unknown, key=str)}."
        )
    for cb in callbacks:
        state = states.get(cb.state_key)
        if state:
            cb.load_state_dict(deepcopy(state))


def restore_training_state(trainer: Any, checkpoint: Dict[str, Any], stage: str = "fit") -> None:
    """Second half, once optimizers and schedulers exist: AMP scaler, loop progress, then (fit only) optimizer and
    scheduler states, in Lightning's order."""
    scaler = getattr(trainer, "scaler", None)
    if scaler is not None:
        for key in (SCALER_KEY, LEGACY_SCALER_KEY):
            if key in checkpoint:
                scaler.load_state_dict(checkpoint[key])
                break

    loops = checkpoint.get("loops")
    progress = getattr(trainer, "loop_progress", None)
    if loops is not None and progress is not None:
        progress.load_state_dict(loops, stage)
    if stage != "fit":
        return
    max_epochs = getattr(trainer, "max_epochs", None)
    current_epoch = progress.fit.current_epoch if progress is not None and loops is not None else trainer.current_epoch
    if max_epochs not in (None, -1) and current_epoch > max_epochs:
        raise _MisconfigurationValueError(
            f"You restored a checkpoint with current_epoch={current_epoch},"
            f" but you have set Trainer(max_epochs={max_epochs})."
        )
    if "optimizer_states" not in checkpoint:
        raise KeyError(
            "Trying to restore optimizer state but checkpoint contains only the model."
            " This is probably due to `ModelCheckpoint.save_weights_only` being set to `True`."
        )
    optimizer_states: List[Dict[str, Any]] = checkpoint["optimizer_states"]
    if len(optimizer_states) != len(trainer.optimizers):
        raise ValueError(
            f"The checkpoint has {len(optimizer_states)} optimizer state(s) but configure_optimizers returned"
            f" {len(trainer.optimizers)} optimizer(s)"
        )
    for optimizer, state in zip(trainer.optimizers, optimizer_states):
        optimizer.load_state_dict(state)
    if "lr_schedulers" not in checkpoint:
        raise KeyError(
            "Trying to restore learning rate scheduler state but checkpoint contains only the model."
            " This is probably due to `ModelCheckpoint.save_weights_only` being set to `True`."
        )
    for config, state in zip(trainer.lr_scheduler_configs, checkpoint["lr_schedulers"]):
        config.scheduler.load_state_dict(state)


def restore_checkpoint(trainer: Any, checkpoint: Dict[str, Any], stage: str = "fit", strict: Optional[bool] = None) -> None:
    """Both halves, for a trainer whose optimizers already exist."""
    restore_modules_and_callbacks(trainer, checkpoint, strict=strict)
    restore_training_state(trainer, checkpoint, stage)


def save_checkpoint(trainer: Any, filepath: Any, weights_only: bool = False, storage_options: Any = None) -> None:
    """Trainer.save_checkpoint: every rank builds the dict (hooks run everywhere, as in Lightning), rank 0 writes it
    atomically through `trainer.checkpoint_io` (a TorchCheckpointIO unless the trainer has another), all ranks wait."""
    if getattr(trainer, "lightning_module", None) is None:
        raise AttributeError(
            "Saving a checkpoint is only possible if a model is attached to the Trainer. Did you call"
            " `Trainer.save_checkpoint()` before calling `Trainer.{fit,validate,test,predict}`?"
        )
    checkpoint = dump_checkpoint(trainer, weights_only)
    if getattr(trainer, "is_global_zero", True):
        io = getattr(trainer, "checkpoint_io", None)
        if io is None:
            from fastlight.utilities.checkpoint_io import TorchCheckpointIO

            io = TorchCheckpointIO()
        io.save_checkpoint(checkpoint, filepath, storage_options=storage_options)
    barrier = getattr(getattr(trainer, "strategy", None), "barrier", None)
    if barrier is not None:
        barrier("Trainer.save_checkpoint")
