"""Lightning's loop objects as users and callbacks reach for them, as thin views over fastlight's own state.

fastlight runs one fit loop (fit_loop.py) and one evaluation loop per entry point (evaluation.py); Lightning nests
loop objects (`fit_loop.epoch_loop.automatic_optimization.optim_progress ...`). The names below read and write the
one place each concept lives:

    loop counters (progress)        trainer.loop_progress (checkpoint_layout.LoopProgress): the fit loop and the
                                    evaluation loops move them; the step / zero_grad / scheduler counters the fit
                                    loop keeps as plain integers are filled in (`FitLoop.sync_progress`) when read
    epoch / step / batch indices    trainer._current_epoch, trainer._global_step, trainer._batches_that_stepped,
                                    FitLoop.epoch_batch_idx / total_batch_idx
    limits                          trainer._cfg (max_epochs, min_epochs, max_steps, min_steps)

    trainer.fit_loop                    FitLoop (+ FitLoopViews): epoch_progress, epoch_loop, min_epochs, max_steps,
                                        min_steps, done, skip, batch_idx, restarting, state_dict/load_state_dict
    trainer.fit_loop.epoch_loop         TrainingEpochLoopView: batch_progress, scheduler_progress,
                                        automatic_optimization.optim_progress, manual_optimization.optim_step_progress,
                                        val_loop, _batches_that_stepped, batch_idx, total_batch_idx, global_step, done
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


# ---------------------------------------------------------------------------------------------------------------- fit
class OptimizationProgressView:
    """Lightning's `_OptimizationProgress`: `.optimizer.step` / `.optimizer.zero_grad` counters, `optimizer_steps`."""

    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop

    @property
    def optimizer(self) -> Any:
        self._fit_loop.sync_progress()
        return self._fit_loop.trainer.loop_progress.fit.optimizer

    @property
    def optimizer_steps(self) -> int:
        return self.optimizer.step.total.completed

    def state_dict(self) -> Dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state_dict)

    def reset(self) -> None:
        self.optimizer.reset_on_run()


class _AutomaticOptimizationView:
    def __init__(self, fit_loop: Any) -> None:
        self.optim_progress = OptimizationProgressView(fit_loop)


class _ManualOptimizationView:
    def __init__(self, fit_loop: Any) -> None:
        self._fit_loop = fit_loop

    @property
    def optim_step_progress(self) -> Any:
        self._fit_loop.sync_progress()
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


class TrainingEpochLoopView(_StepLimits):
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
        self._fit_loop.sync_progress()
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
        return bool(self.trainer.should_stop) and self._fit_loop._can_stop_early()

    def _should_accumulate(self) -> bool:
        return self._fit_loop._should_accumulate()

    def state_dict(self) -> Dict[str, Any]:
        self._fit_loop.sync_progress()
        state = self.trainer.loop_progress.fit.state_dict()
        prefix = "epoch_loop."
        return {k[len(prefix):]: v for k, v in state.items() if k.startswith(prefix)}


class FitLoopViews(_ProgressOwner, _StepLimits):
    """Lightning's `_FitLoop` attributes on fastlight's FitLoop (mixed into it; see the module docstring)."""

    _epochs_processed = 0  # the fit loop's own count, set when it runs

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
        """A checkpoint's counters were restored and the fit has not yet continued from them."""
        return bool(self._resume_pending or self._restarting)

    @property
    def done(self) -> bool:
        """No more epochs to run: max_epochs / max_steps reached, no training batches, or a stop was asked."""
        if "_epochs_processed" not in self.__dict__:
            self._epochs_processed = self.trainer.current_epoch
        return self._done()

    @property
    def skip(self) -> bool:
        return self.trainer.num_training_batches == 0 or self.trainer._cfg.limit_train_batches == 0

    @property
    def _results(self) -> Any:
        return self.trainer._train_results

    def _progress(self) -> Any:
        self.sync_progress()
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
