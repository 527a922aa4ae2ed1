"""Lightning's loop objects as users and callbacks reach for them, as thin views over fastlight's own state.

fastlight runs one fit loop (fit_loop.py) and one evaluation loop per entry point (evaluation.py); Lightning nests
loop objects (`fit_loop.epoch_loop.automatic_optimization.optim_progress ...`). The names below read and write the
one place each concept lives:

    loop counters (progress)        trainer.loop_progress (checkpoint_layout.LoopProgress): Lightning's own counter
                                    dataclasses (fastlight/loops/progress.py), moved by the fit loop and the
                                    evaluation loops; trainer.current_epoch / global_step / _batches_that_stepped
                                    are read from them
    batch indices                   FitLoop.epoch_batch_idx / total_batch_idx
    limits                          trainer._cfg (max_epochs, min_epochs, max_steps, min_steps)
    restart state                   FitLoop: restored counters not yet continued from (`restarting`)

    trainer.fit_loop                    FitLoop (+ FitLoopViews): epoch_progress, epoch_loop, min_epochs, max_steps,
                                        min_steps, done, skip, _can_stop_early, batch_idx, restarting, reset,
                                        state_dict/load_state_dict
    trainer.fit_loop.epoch_loop         TrainingEpochLoopView: batch_progress, scheduler_progress,
                                        automatic_optimization.optim_progress, manual_optimization.optim_step_progress,
                                        val_loop, _batches_that_stepped, batch_idx, total_batch_idx, global_step, done,
                                        restarting, reset, _get_monitor_value (the plateau schedulers' metric lookup)
    fit_loop.epoch_loop.val_loop        FitValidationLoopView: trainer.validate_loop as the fit runs it, with the fit's
                                        validation counters (batch_progress) and `_has_run`
    trainer.{validate,test}_loop        EvaluationLoop (+ EvaluationLoopViews): batch_progress, _has_run, state_dict
    trainer.predict_loop                PredictionLoop (+ EvaluationLoopViews): batch_progress, state_dict
"""
from typing import Any, Dict, Optional


class _ProgressOwner:
    """state_dict / load_state_dict of one loop's part of the checkpoint's "loops"."""

    def _progress(self) -> Any:
        raise NotImplementedError

    def state_dict(self) -> Dict[str, Any]:
        return self._progress().state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._progress().load_state_dict(state_dict)


class _RestartingOfFitLoop:
    """`restarting` of a part of the fit loop: the fit loop's one flag (Lightning sets it on every child loop)."""

    _fit_loop: Any

    @property
    def restarting(self) -> bool:
        return self._fit_loop.restarting

    @restarting.setter
    def restarting(self, value: bool) -> None:
        self._fit_loop.restarting = value


# ---------------------------------------------------------------------------------------------------------------- fit
class _AutomaticOptimizationView(_RestartingOfFitLoop):
    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop

    @property
    def optim_progress(self) -> Any:
        """The `_OptimizationProgress` of the fit (optimizer.step and optimizer.zero_grad counters)."""
        return self._fit_loop.trainer.loop_progress.fit.optim

    def run(self, optimizer: Any, batch_idx: int, kwargs: Dict[str, Any]) -> Dict[str, Any]:
        """One automatic-optimization step on `kwargs["batch"]`, as the fit runs it (hooks, backward, optimizer
        step, counters); its output: {"loss": detached loss, ...extra keys}, or {} when training_step returned None.
        `optimizer` is the trainer's (Lightning steps one optimizer automatically)."""
        loop = self._fit_loop
        loop._prepare_step_functions(loop.trainer.lightning_module)
        return loop._automatic_step(self._batch_args(kwargs), batch_idx)

    def _make_closure(self, kwargs: Dict[str, Any], optimizer: Any, batch_idx: int) -> Any:
        """The closure `optimizer.step(closure)` calls: training_step, zero_grad (on the first batch of an
        accumulation window), backward; calling it returns the detached loss (None when the step was skipped)."""
        from fastlight.trainer.fit_loop import _Closure

        loop = self._fit_loop
        loop._prepare_step_functions(loop.trainer.lightning_module)
        zero_grad = batch_idx % loop.trainer.accumulate_grad_batches == 0
        return _Closure(loop, self._batch_args(kwargs), batch_idx, zero_grad, optimizer)

    def _batch_args(self, kwargs: Dict[str, Any]) -> tuple:
        if self._fit_loop._pass_batch_idx:
            return kwargs["batch"], kwargs["batch_idx"]
        return (kwargs["batch"],)


class _ManualOptimizationView(_RestartingOfFitLoop):
    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop

    @property
    def optim_step_progress(self) -> Any:
        return self._fit_loop.trainer.loop_progress.fit.manual_step


class FitValidationLoopView:
    """`fit_loop.epoch_loop.val_loop`: the validation loop as the fit runs it. Lightning keeps a second evaluation loop
    for this; fastlight runs trainer.validate_loop with the fit's counters. Attributes not named here are the
    validation loop's own (setup_data, run, max_batches, ...)."""

    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop

    @property
    def batch_progress(self) -> Any:
        return self._fit_loop.trainer.loop_progress.fit.val_batch

    @property
    def _has_run(self) -> bool:
        return self._fit_loop.validation_has_run

    def state_dict(self) -> Dict[str, Any]:
        return {"state_dict": {}, "batch_progress": self.batch_progress.state_dict()}

    def __getattr__(self, name: str) -> Any:
        if name == "_fit_loop":  # not set yet (pickle builds the object before its state): nothing to forward to
            raise AttributeError(name)
        return getattr(self._fit_loop.trainer.validate_loop, name)

    def __setattr__(self, name: str, value: Any) -> None:
        # the loop's own attributes, e.g. `_evaluation_step` replaced to watch the calls, are set on the loop
        if name == "_fit_loop":
            object.__setattr__(self, name, value)
        else:
            setattr(self._fit_loop.trainer.validate_loop, name, value)

    def __delattr__(self, name: str) -> None:
        delattr(self._fit_loop.trainer.validate_loop, name)


class _StepLimits:
    """`max_steps` / `min_steps` of `fit_loop` and `fit_loop.epoch_loop`: both read and write the Trainer's config."""

    @property
    def max_steps(self) -> int:
        return self.trainer._cfg.max_steps

    @max_steps.setter
    def max_steps(self, value: int) -> None:
        self.trainer._cfg.max_steps = value

    @property
    def min_steps(self) -> Optional[int]:
        return self.trainer._cfg.min_steps

    @min_steps.setter
    def min_steps(self, value: Optional[int]) -> None:
        self.trainer._cfg.min_steps = value


class TrainingEpochLoopView(_StepLimits, _RestartingOfFitLoop):
    """`trainer.fit_loop.epoch_loop`: the counters and limits of the running training epoch."""

    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop
        self.automatic_optimization = _AutomaticOptimizationView(fit_loop)
        self.manual_optimization = _ManualOptimizationView(fit_loop)
        self.val_loop = FitValidationLoopView(fit_loop)

    @property
    def trainer(self) -> Any:
        return self._fit_loop.trainer

    @property
    def batch_progress(self) -> Any:
        return self.trainer.loop_progress.fit.batch

    @property
    def scheduler_progress(self) -> Any:
        return self.trainer.loop_progress.fit.scheduler

    @property
    def _batches_that_stepped(self) -> int:
        return self.trainer._batches_that_stepped

    @_batches_that_stepped.setter
    def _batches_that_stepped(self, value: int) -> None:
        self.trainer._batches_that_stepped = value

    @property
    def batch_idx(self) -> int:
        return self._fit_loop.epoch_batch_idx

    @property
    def total_batch_idx(self) -> int:
        return self._fit_loop.total_batch_idx

    @property
    def global_step(self) -> int:
        return self.trainer.global_step

    @property
    def _results(self) -> Any:
        return self.trainer._train_results

    def _get_monitor_value(self, key: str) -> Any:
        """The metric a ReduceLROnPlateau scheduler monitors (the fit loop asks here, so it can be wrapped)."""
        return self.trainer.callback_metrics.get(key)

    @property
    def _is_training_done(self) -> bool:
        max_steps = self.max_steps
        if max_steps != -1 and self.trainer.global_step >= max_steps:
            return True
        progress = self.batch_progress
        return progress.current.ready == self.trainer.num_training_batches or progress.is_last_batch

    @property
    def done(self) -> bool:
        """The epoch ends here: its batches (or max_steps) are done, or a stop was asked and min_* allow it."""
        if self._is_training_done:
            return True
        if not self.trainer.should_stop:
            return False
        if self._fit_loop._can_stop_early:
            return True
        self._fit_loop._info_min_not_met()
        return False

    def _should_accumulate(self) -> bool:
        return self._fit_loop._should_accumulate()

    def reset(self) -> None:
        """Lightning's epoch-loop reset: restored counters are made ready to continue from (see
        FitLoopViews.reset); otherwise a new epoch starts its per-epoch counters over."""
        fit_loop = self._fit_loop
        if fit_loop._resume_pending:
            fit_loop._apply_resume()
        elif fit_loop._resume is None and not fit_loop._restarting:
            fit_loop._reset_epoch_progress()

    def state_dict(self) -> Dict[str, Any]:
        state = self.trainer.loop_progress.fit.state_dict()
        prefix = "epoch_loop."
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class FitLoopViews(_ProgressOwner, _StepLimits):
    """Lightning's `_FitLoop` attributes on fastlight's FitLoop (mixed into it; see the module docstring)."""

    @property
    def epoch_loop(self) -> TrainingEpochLoopView:
        view = self.__dict__.get("_epoch_loop_view")
        if view is None:
            view = self.__dict__["_epoch_loop_view"] = TrainingEpochLoopView(self)
        return view

    @property
    def epoch_progress(self) -> Any:
        return self.trainer.loop_progress.fit.epoch

    @property
    def min_epochs(self) -> Optional[int]:
        return self.trainer._cfg.min_epochs

    @min_epochs.setter
    def min_epochs(self, value: Optional[int]) -> None:
        self.trainer._cfg.min_epochs = value

    @property
    def batch_idx(self) -> int:
        return self.epoch_batch_idx

    @property
    def restarting(self) -> bool:
        """Restored counters of an unfinished epoch (or of a fit counting steps) the fit continues from; True from
        the restore to the end of the epoch the fit continues."""
        return bool(self._restarting)

    @restarting.setter
    def restarting(self, value: bool) -> None:
        # False: the restored counters are taken as they are, without the restart rules (Lightning's flag)
        self._restarting = bool(value)
        if not value:
            self._resume_pending = False

    def reset(self) -> None:
        """Lightning's fit-loop reset: restored counters are made ready to continue from (partial events dropped, a
        checkpoint saved at an epoch's end counted as that epoch done: `checkpoint_layout.resume_point`). `run`
        does this itself; nothing to do when no checkpoint was restored."""
        if self._resume_pending:
            self._apply_resume()

    @property
    def done(self) -> bool:
        """No more epochs to run: max_epochs / max_steps reached, no training batches, or a stop was asked."""
        return self._done()

    @property
    def skip(self) -> bool:
        return self.trainer.num_training_batches == 0 or self.trainer._cfg.limit_train_batches == 0

    @property
    def _results(self) -> Any:
        return self.trainer._train_results

    def _progress(self) -> Any:
        return self.trainer.loop_progress.fit

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        """Restore the fit's counters (Lightning's "loops"/"fit_loop" dict); the next fit continues from them."""
        self.trainer.loop_progress.fit.load_state_dict(state_dict)
        self.on_restored()


# ---------------------------------------------------------------------------------------------------- evaluation
class EvaluationLoopViews(_ProgressOwner):
    """Lightning's evaluation-loop attributes on fastlight's EvaluationLoop / PredictionLoop: the counters of the
    entry point (trainer.validate/test/predict); a fit's validation counts in fit_loop.epoch_loop.val_loop."""

    _has_run = False  # a batch ran in the latest run (set by the loop; not for the sanity check)

    def _progress(self) -> Any:
        return getattr(self.trainer.loop_progress, self.fn)

    @property
    def batch_progress(self) -> Any:
        return self._progress().batch
