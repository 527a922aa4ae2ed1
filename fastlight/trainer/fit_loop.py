"""The fit loop, the whole of it, in execution order. Every hook is called on its own line.

    Trainer.fit -> Trainer._run: configure_callbacks, prepare_data, setup, configure_model,
                   configure_optimizers, on_fit_start, then (RNG isolated) the sanity check:
                   on_sanity_check_start, validation loop (num_sanity_val_steps batches), on_sanity_check_end
    FitLoop.run
        setup_data                          train_dataloader() (a list/tuple/dict of loaders: a CombinedLoader,
                                            max_size_cycle); the epoch-0 iterator is created here
        val_dataloader()                    (when not loaded by the sanity check)
        on_train_start
        for each epoch:
            on_train_epoch_start            (the iterator of epochs >= 1 is created after this hook)
            (training_step(self, dataloader_iter): FitLoop._run_epoch_step_fetches, the step fetches the batches
             through trainer.fit_loop._data_fetcher, a loops.fetchers._DataLoaderIterDataFetcher)
            for each batch:                 FitLoop._run_batch (batches of a TensorDataset loader fetched by
                                            one index_select per tensor: input_path.py)
                on_before_batch_transfer, transfer_batch_to_device, on_after_batch_transfer
                on_train_batch_start        (returning -1 ends the epoch)
                automatic optimization      FitLoop._automatic_step (FitLoop._direct_automatic_step runs the
                                            same hooks in the same order when nothing can tell the difference)
                                            Trainer(cuda_graphs=True): the same step replayed as one CUDA graph
                                            (graph_step.py; warm-up, capture and odd batches eager)
                    accumulating: closure() | else: optimizer_step(epoch, batch_idx, optimizer, closure)
                        -> optimizer.step(closure) -> precision.optimizer_step:
                        closure():  training_step
                                    on_before_zero_grad, optimizer_zero_grad  (first batch of a window)
                                    on_before_backward, backward, on_after_backward
                                    (zero_grad and backward skipped while `_skip_backward`: SWA's batch-norm epoch)
                        on_before_optimizer_step, configure_gradient_clipping -> clip_gradients
                        the optimizer's own step
                manual optimization: training_step (user calls manual_backward, opt.step)
                lr_scheduler_step           interval="step"; interval="epoch" on the last batch
                on_train_batch_end
                validation loop             at val_check_interval: on_validation_model_zero_grad, ...
                lr_scheduler_step           ReduceLROnPlateau with interval="step"
            on_train_epoch_end              callbacks, module, then checkpoint/early-stopping callbacks
            lr_scheduler_step               ReduceLROnPlateau with interval="epoch"
        on_train_end
    on_fit_end, teardown

Costs per step: no host sync (the loss stays on the device; logged values too), hooks dispatched only to
callbacks that override them (resolved once per run), no per-step dict rebuilding.
"""
import inspect
import time
from collections.abc import Mapping
from contextlib import nullcontext
from copy import deepcopy
from typing import Any, Callable, Dict, List, Optional

import torch
from torch import Tensor

from fastlight.loops.fetchers import _DataLoaderIterDataFetcher, _dataloader_iter_fetcher
from fastlight.strategies.data import replace_sampler, set_sampler_epoch
from fastlight.strategies.strategy import backward_is_customized
from fastlight.trainer import graph_step, input_path, resume_state
from fastlight.trainer.config import parse_num_batches
from fastlight.trainer.connector_views import _DataLoaderSource, _request_dataloader
from fastlight.trainer.compiled import batch_channels_last
from fastlight.trainer.loop_views import FitLoopViews
from fastlight.trainer.precision import MixedPrecision, Precision
from fastlight.utilities.combined_loader import _MODES, CombinedLoader, _CombinedBatches
from fastlight.utilities.combined_loader import sized_len as _sized_len
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.data import warn_if_zero_length
from fastlight.utilities.rank_zero import rank_zero_debug, rank_zero_info, rank_zero_warn
from fastlight.utilities.warnings import PossibleUserWarning

_SKIPPED = object()


def _no_signal() -> int:
    return 0


class TrainingStepError(MisconfigurationException, ValueError):
    """`training_step` returned something the loop cannot optimize."""


def _takes_batch_idx(fn: Callable) -> bool:
    """Lightning passes batch_idx when the step names it, takes *args, or has two or more parameters."""
    target = inspect.unwrap(fn)  # a torch.compile'd step wraps the user's
    try:
        spec = inspect.getfullargspec(target)
    except TypeError:
        return True
    args = spec.args[1:] if inspect.ismethod(target) else spec.args
    return "batch_idx" in args or spec.varargs is not None or len(args) >= 2


def _loader_len(loader: Any) -> float:
    """The loader's length (inf when it has none), warned about when it is zero (Lightning sums the lengths over the
    ranks first, a collective; the local length stands for it: a DistributedSampler gives every rank the same)."""
    length = _sized_len(loader)
    warn_if_zero_length(type(loader).__name__, length)
    return length


def _check_iterable(loader: Any) -> None:
    if not hasattr(loader, "__iter__"):
        raise TypeError(
            f"`train_dataloader` must return an iterable (a torch DataLoader), got {type(loader).__name__}"
        )


def _check_train_mode(combined: CombinedLoader) -> None:
    if combined._mode == "sequential":  # training steps on every loader at once
        raise ValueError(
            '`FitLoop` does not support the `CombinedLoader(mode="sequential")` mode.'
            f" The available modes are: {[m for m in _MODES if m != 'sequential']}"
        )


def _overfit_loaders(loaders: List[Any], prefix: str) -> List[Any]:
    """overfit_batches: the loaders re-created to draw in order (a SequentialSampler), unless all of them already do;
    warned about once, as Lightning does. Loaders over an IterableDataset (no sampler to swap) stay as they are, and so
    do those with a DistributedSampler: the one the strategy injected already draws in order under overfit_batches."""
    from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, SequentialSampler

    def swappable(dl: Any) -> bool:
        return (isinstance(dl, DataLoader) and not isinstance(dl.dataset, IterableDataset)
                and not isinstance(dl.sampler, DistributedSampler))

    if all(isinstance(dl.sampler, SequentialSampler) for dl in loaders if swappable(dl)):
        return loaders
    rank_zero_warn(f"You requested to overfit but enabled {prefix} dataloader shuffling. We are turning off the"
                   f" {prefix} dataloader shuffling for you.")
    return [replace_sampler(dl, SequentialSampler(dl.dataset)) if swappable(dl) else dl for dl in loaders]


class _Closure:
    """training_step + zero_grad + backward, called by `optimizer.step(closure)` (or directly when accumulating)."""

    __slots__ = ("loop", "batch_args", "batch_idx", "zero_grad", "result", "optimizer")

    def __init__(self, loop: "FitLoop", batch_args: tuple, batch_idx: int, zero_grad: bool, optimizer: Any) -> None:
        self.loop = loop
        self.batch_args = batch_args
        self.batch_idx = batch_idx
        self.zero_grad = zero_grad
        self.optimizer = optimizer
        self.result: Any = _SKIPPED

    def __call__(self, *args: Any, **kwargs: Any) -> Optional[Tensor]:
        if not torch.is_grad_enabled():  # an optimizer may call the closure under no_grad
            with torch.enable_grad():
                return self._run()
        return self._run()

    def _run(self) -> Optional[Tensor]:
        loop = self.loop
        loss, extra = loop._training_step(self.batch_args)
        if self.zero_grad and not loop._skip_backward:
            loop._zero_grad(self.batch_idx, self.optimizer)
        if loss is not None:
            if not loop._skip_backward:
                if loop._strategy_backward is None:
                    loop.trainer._precision.backward(loop.trainer, loss, self.optimizer)
                else:  # a strategy that takes over the backward (Lightning's loop always calls strategy.backward)
                    loop._strategy_backward(loss, self.optimizer)
            # Lightning hands out a detached clone; a detached view holds the same value without the copy
            detached = loss.detach()
            self.result = {"loss": detached, **extra} if extra else {"loss": detached}
            return detached
        loop._warn_none()
        self.result = {}
        return None


class FitLoop(FitLoopViews):  # Lightning's fit_loop attributes: views over this loop's state (loop_views.py)
    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.loader: Any = None
        self._loader_batches: float = float("inf")  # batches the loader yields per epoch, limits applied
        self._iterator: Any = None
        self._last_train_dl_reload_epoch = float("-inf")
        self.epoch_batch_idx = -1  # index of the current batch within the epoch
        self.total_batch_idx = -1
        self.is_last_batch = False
        self._accumulating = False  # the batch being run only accumulates gradients (set per batch; read by saves)
        self._warned_none = False
        self._resume_pending = False  # a checkpoint's counters were restored: `run` continues from them
        self._resume: Any = None  # the ResumePoint of a mid-epoch restart, for the epoch it lands in
        # the first epoch after a restore: it reuses the iterator `setup_data` made (Lightning's `is_resuming`), and
        # when the restore was mid-epoch (or max_steps is set: Lightning's `restarting`) the plateau schedulers skip
        # the epoch end
        self._resuming = False
        self._restarting = False
        self.validation_has_run = False
        # training_step runs without zero_grad and backward (Lightning's flag: SWA's batch-norm statistics epoch)
        self._skip_backward = False
        self._strategy_backward: Optional[Callable[..., Any]] = None  # set per run: _prepare_step_functions
        # exact resume (resume_state.py): the RNG copies taken around the train iterator's creation, a restored
        # checkpoint's state for this rank until the epoch it lands in starts, stateful-loader states to load
        self._iter_record: Optional[Dict[str, Any]] = None
        self._exact: Optional[Dict[str, Any]] = None
        self._exact_pending: Optional[Dict[str, Any]] = None
        self._loader_states_to_load: list = []
        self._stateful_loaded = False
        self._stopping_at_boundary = False  # a SIGTERM / Ctrl-C stop is being handled after a finished batch
        self._poll_signals: Callable[[], int] = _no_signal  # a module function: a Trainer stays picklable (ddp_spawn)
        self._prefetch_to_device = False  # set per run by _prepare_step_functions
        self._fused_plain_step = False
        self._graph: Any = None  # graph_step.GraphStep of a run with Trainer(cuda_graphs=True | "auto")
        # training_step(self, dataloader_iter): the fetcher the step fetches through (None on the default path, which
        # iterates the input path directly)
        self._step_fetches = False
        self._data_fetcher: Optional[_DataLoaderIterDataFetcher] = None

    # Lightning's fit-loop knobs that callbacks turn (SWA adds an epoch and a batch for its batch-norm pass)
    @property
    def max_epochs(self) -> int:
        return self.trainer._cfg.max_epochs

    @max_epochs.setter
    def max_epochs(self, value: int) -> None:
        self.trainer._cfg.max_epochs = value

    @property
    def max_batches(self) -> float:
        return self.trainer.num_training_batches

    @max_batches.setter
    def max_batches(self, value: float) -> None:
        self.trainer.num_training_batches = value

    def reset_data(self) -> None:
        self.loader = None
        self._iterator = None
        self._last_train_dl_reload_epoch = float("-inf")

    # ------------------------------------------------------------------------------------- data
    def setup_data(self) -> None:
        trainer = self.trainer
        cfg = trainer._cfg
        reload_n = cfg.reload_dataloaders_every_n_epochs
        should_reload = bool(reload_n) and trainer.current_epoch - self._last_train_dl_reload_epoch >= reload_n
        if self.loader is not None and not should_reload:
            return
        if cfg.limit_train_batches == 0:
            return
        loader = _request_dataloader(_DataLoaderSource(trainer, "train"))
        if loader is None:
            raise ValueError(
                "No training data: `train_dataloader()` returned None. Return a DataLoader (or an iterable of"
                " batches), or pass `train_dataloaders=` to `Trainer.fit`."
            )
        if isinstance(loader, (list, tuple, dict, CombinedLoader)):
            # several loaders: iterated together, each batch in the loaders' structure (Lightning's default mode)
            combined = loader if isinstance(loader, CombinedLoader) else CombinedLoader(loader, "max_size_cycle")
            if cfg.overfit_batches > 0:
                combined.flattened = _overfit_loaders(combined.flattened, "train")
            for dl in combined.flattened:
                _check_iterable(dl)
            combined.limits = [parse_num_batches("train", _loader_len(dl), cfg.limit_train_batches)
                               for dl in combined.flattened]
            trainer.train_dataloader = combined.iterables
            if combined._mode == "sequential":  # counted before the mode is refused, as Lightning does
                trainer.num_training_batches = combined._num_batches()
            _check_train_mode(combined)
            loader = _CombinedBatches(combined)
            num = _sized_len(loader)
        else:
            if cfg.overfit_batches > 0:
                loader = _overfit_loaders([loader], "train")[0]
            _check_iterable(loader)
            trainer.train_dataloader = loader
            num = parse_num_batches("train", _loader_len(loader), cfg.limit_train_batches)
        warn_if_zero_length("CombinedLoader", num)  # the train loaders together (Lightning's name for them)
        self.loader = loader
        trainer.num_training_batches = self._loader_batches = num
        self._iterator = self._new_iterator()  # epoch 0's iterator: created here, as Lightning does (RNG order)
        if num == 0:
            return
        self._last_train_dl_reload_epoch = trainer.current_epoch
        vci = cfg.val_check_interval
        if cfg.val_check_time_interval is not None:
            trainer.val_check_batch = None  # time-based validation: `_should_check_val` reads the clock
        elif isinstance(vci, int):
            trainer.val_check_batch = vci
            if vci > num and cfg.check_val_every_n_epoch is not None and cfg.limit_val_batches > 0:
                raise ValueError(
                    f" `val_check_interval` ({vci}) must be less than or equal"
                    f" to the number of the training batches ({num})."
                    " If you want to disable validation set `limit_val_batches` to 0.0 instead."
                    " If you want to validate based on the total training batches, set `check_val_every_n_epoch=None`."
                )
        elif num == float("inf"):
            if vci != 1.0:
                raise ValueError(
                    "When using an IterableDataset for `train_dataloader`, `Trainer(val_check_interval)` must be"
                    " `1.0` or an int. An int k specifies checking validation every k training batches."
                )
            trainer.val_check_batch = float("inf")
        else:
            trainer.val_check_batch = max(1, int(num * vci))
        if trainer.loggers and num < cfg.log_every_n_steps and not cfg.fast_dev_run:
            rank_zero_warn(
                f"The number of training batches ({num}) is smaller than the logging interval"
                f" Trainer(log_every_n_steps={cfg.log_every_n_steps}). Set a lower value for log_every_n_steps if"
                " you want to see logs for the training epoch.",
                category=PossibleUserWarning,
            )

    def _new_iterator(self) -> Any:
        """iter() on the train loader, with a copy of the RNGs it depends on taken just before (exact resume)."""
        self._stateful_loaded = resume_state.load_stateful(self)  # only after a restore, before iter() (Lightning)
        self._iter_record = {"epoch": self.trainer.current_epoch, "at_iter": resume_state.snapshot(self._train_loaders()),
                             "at_first_next": None}
        return input_path.iterate(self.loader, self.trainer._cfg.batched_input)  # batched fetch when it qualifies

    def _train_loaders(self) -> list:
        """The user's loaders: the one train loader, or each loader of a CombinedLoader."""
        return self.loader.combined.flattened if isinstance(self.loader, _CombinedBatches) else [self.loader]

    # ------------------------------------------------------------------------------------- stopping
    @property
    def _can_stop_early(self) -> bool:
        """min_epochs (epochs processed) and min_steps (optimizer steps) allow a requested stop."""
        trainer = self.trainer
        cfg = trainer._cfg
        met_epochs = trainer.loop_progress.fit.epoch.current.processed >= cfg.min_epochs if cfg.min_epochs else True
        met_steps = trainer.global_step >= cfg.min_steps if cfg.min_steps else True
        return met_epochs and met_steps

    def _done(self) -> bool:
        trainer = self.trainer
        cfg = trainer._cfg
        if trainer.num_training_batches == 0:
            rank_zero_info("`Trainer.fit` stopped: No training batches.")
            return True
        if cfg.max_steps != -1 and trainer.global_step >= cfg.max_steps:
            rank_zero_info(f"`Trainer.fit` stopped: `max_steps={cfg.max_steps!r}` reached.")
            return True
        epochs = trainer.loop_progress.fit.epoch.current
        # `processed` moves before on_train_epoch_end (where checkpoints are saved), `completed` after
        if cfg.max_epochs != -1 and epochs.processed >= cfg.max_epochs:
            epochs.completed = epochs.processed  # a restored epoch-end save: current_epoch as after that epoch
            rank_zero_info(f"`Trainer.fit` stopped: `max_epochs={cfg.max_epochs!r}` reached.")
            return True
        if trainer.should_stop:
            if self._can_stop_early:
                rank_zero_debug("`Trainer.fit` stopped: `trainer.should_stop` was set.")
                return True
            self._info_min_not_met()
        return False

    def _info_min_not_met(self) -> None:
        cfg = self.trainer._cfg
        self.trainer._info_once(f"Trainer was signaled to stop but the required `min_epochs={cfg.min_epochs!r}` or"
                                f" `min_steps={cfg.min_steps!r}` has not been met. Training will continue...")

    def _should_check_val_epoch(self) -> bool:
        trainer = self.trainer
        cve = trainer._cfg.check_val_every_n_epoch
        return trainer.enable_validation and (cve is None or (trainer.current_epoch + 1) % cve == 0)

    # ------------------------------------------------------------------------------------- the run
    def run(self) -> None:
        trainer = self.trainer
        cfg = trainer._cfg
        module = trainer._module
        trainer.training = True
        trainer.validating = False  # the sanity check's stage is over (Lightning: one running stage at a time)
        trainer.state.stage = "train"
        trainer._active_results = trainer._train_results
        self.setup_data()
        if self._resume_pending:
            self._apply_resume()
        if self._done() or cfg.limit_train_batches == 0:
            return
        torch.set_grad_enabled(True)
        if self._should_check_val_epoch() and trainer.val_dataloaders is None:
            trainer.state.stage = "validate"  # requested as a validation's loaders (Lightning's stage there)
            trainer.validate_loop.setup_data()
            trainer.state.stage = "train"
        eval_modules = [n for n, m in module.named_modules() if not m.training]
        if eval_modules:
            rank_zero_warn(f"Found {len(eval_modules)} module(s) in eval mode at the start of training."
                           " This may lead to unexpected behavior during training. If this is intentional,"
                           " you can ignore this warning.", category=PossibleUserWarning)
        self._prepare_step_functions(module)
        self._poll_signals = trainer._signals.poller()  # SIGTERM / Ctrl-C: checked after each batch (signals.py)
        trainer._train_start_time = time.monotonic()
        trainer._last_val_time = trainer._train_start_time
        trainer._call_callbacks("on_train_start")
        trainer._call_module("on_train_start")
        progress = trainer.loop_progress.fit
        while not self._done():
            self.setup_data()
            for dl in self._train_loaders():  # DistributedSampler: a new shuffle per epoch
                set_sampler_epoch(dl, trainer.current_epoch)
            resume, self._resume = self._resume, None
            if resume is None:  # a mid-epoch restart continues its epoch: no new epoch start
                progress.epoch.increment_ready()
                trainer._call_callbacks("on_train_epoch_start")
                trainer._call_module("on_train_epoch_start")
                progress.epoch.increment_started()
                self._reset_epoch_progress()
            self._val_this_epoch = self._should_check_val_epoch()
            with trainer.profiler.profile("run_training_epoch"):
                self._run_epoch(resume)
                self._end_epoch()
            self._resuming = self._restarting = False
        trainer._signals.end_of_training()
        trainer._call_callbacks("on_train_end")
        trainer._call_module("on_train_end")

    def _prepare_step_functions(self, module: Any) -> None:
        self._pass_batch_idx = _takes_batch_idx(module.training_step)
        # training_step(self, dataloader_iter): the step fetches its own batches (Lightning's dataloader_iter mode)
        self._data_fetcher = _dataloader_iter_fetcher(module, "training_step")
        self._step_fetches = self._data_fetcher is not None
        if self._data_fetcher is not None and self.trainer.profiler.profiling:  # each fetch of the step is timed
            profiler, action = self.trainer.profiler, "[_TrainingEpochLoop].train_dataloader_next"
            self._data_fetcher._start_profiler = lambda: profiler.start(action)
            self._data_fetcher._stop_profiler = lambda: profiler.stop(action)
        strategy = self.trainer.strategy
        self._distributed = strategy.is_distributed
        # None: the precision plugin's backward directly (what fastlight's strategies' `backward` does)
        self._strategy_backward = strategy.backward if backward_is_customized(strategy) else None
        # distributed: the step runs inside the wrapper's forward (DDP prepares its gradient all-reduce there)
        self._training_step_fn = strategy.training_step if self._distributed else module.training_step
        profiler = self.trainer.profiler
        if profiler.profiling:
            self._training_step_fn = profiler.wrap(f"[Strategy]{type(strategy).__name__}.training_step",
                                                   self._training_step_fn)
        self._plain_forward = type(self.trainer._precision).forward_context is Precision.forward_context
        self._automatic = module.automatic_optimization
        self._direct_step = self._can_step_directly(module)
        trainer = self.trainer
        self._pre_step_work = "on_before_optimizer_step" in trainer._active_hooks or trainer._clipping_active
        engine = trainer._precision._engine
        # the fused engine's step when it has work beyond optimizer.step() (scale, clip, flat grads); else None
        self._engine_step = None
        if engine is not None:
            from fastlight.core.module import LightningModule

            engine.clip_in_place = (
                type(module).configure_gradient_clipping is not LightningModule.configure_gradient_clipping)
            engine.unscale_for_hooks = "on_before_optimizer_step" in trainer._active_hooks or engine.clip_in_place
            opt = trainer.optimizers[0] if self._direct_step else None
            if opt is not None and engine.manages(opt) and engine.needs_step_work(trainer, opt):
                self._engine_step = engine.step
        # a fused optimizer stepped directly: `step_unobserved` skips torch's profiling wrapper when nothing sees it
        self._fused_plain_step = self._direct_step and hasattr(trainer.optimizers[0], "step_unobserved")
        self._accumulating = False
        # the batch's device copy can be made by the input path when no transfer hook sees the host batch
        self._prefetch_to_device = trainer.strategy.root_device.type == "cuda" and trainer._default_transfer
        self._graph = graph_step.setup(trainer, self, module)  # Trainer(cuda_graphs=...): None when off/refused
        if not self._automatic:
            for opt in self.trainer._lightning_optimizers:
                opt._on_before_step = self._manual_on_before_step
                opt._on_after_step = self._manual_on_after_step

    def _run_epoch(self, resume: Any = None) -> None:
        trainer = self.trainer
        # a callback may allow more batches than the (limited) loader yields (SWA's batch-norm epoch): the loader's
        # end is then the last batch, as Lightning's look-ahead fetcher finds
        num_batches = min(trainer.num_training_batches, self._loader_batches)
        self.epoch_batch_idx = -1
        self.is_last_batch = False
        exact, self._exact_pending = self._exact_pending, None
        if exact is not None and resume is not None:  # rebuilt under the RNGs of the original (resume_state.py)
            self._iterator = resume_state.rebuild_iterator(self, exact, resume.batch_idx)
        elif (trainer.current_epoch > 0 and not self._resuming) or self._iterator is None:
            # a fresh epoch: same place Lightning creates it (RNG order); after a restore Lightning keeps the
            # iterator `setup_data` made
            self._iterator = self._new_iterator()
        iterator = self._iterator
        if exact is None:
            if self._iter_record is not None and self._iter_record["at_first_next"] is None:
                self._iter_record["at_first_next"] = resume_state.snapshot(self._train_loaders())
            if resume is not None and resume.batch_idx and not self._stateful_loaded:
                self._fast_forward(iterator, resume.batch_idx)
            if resume is not None and resume.batch_idx and self._validation_was_interrupted():
                self._run_validation()  # the one an exception interrupted there, again in full
        if self._step_fetches:
            fetcher = self._data_fetcher
            start = self.epoch_batch_idx + 1  # batches skipped by a mid-epoch resume count as fetched
            fetcher._start(_numbered(iterator, start), None if num_batches == float("inf") else int(num_batches), start)
            self._run_epoch_step_fetches(fetcher)
            return
        # batched fetch: next() without the DataLoader's per-batch profiler range (unless a profiler records); on
        # CUDA, batches gathered into pinned buffers and copied one ahead on a side stream
        iterator = input_path.epoch_iterator(iterator, self.loader, trainer.strategy.root_device,
                                             num_batches - (self.epoch_batch_idx + 1), self._prefetch_to_device)
        run_batch = self._run_batch
        if trainer.profiler.profiling:  # Lightning's action names; nothing is wrapped without a profiler
            iterator = _ProfiledIterator(iterator, trainer.profiler, "[_TrainingEpochLoop].train_dataloader_next")
            run_batch = trainer.profiler.wrap("run_training_batch", run_batch)
        prefetched: list = []
        sized = num_batches != float("inf")
        if not sized:  # an iterable without len: look one batch ahead to know which batch is the last
            try:
                prefetched.append(next(iterator))
            except StopIteration:
                return
        if exact is not None:  # the RNGs of the save, then what the saved batch still had to do
            resume_state.finish(self, exact)
        while True:
            if self.is_last_batch or (sized and self.epoch_batch_idx + 1 >= num_batches):
                break
            if trainer._cfg.max_steps != -1 and trainer.global_step >= trainer._cfg.max_steps:
                break
            if sized:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                self.is_last_batch = self.epoch_batch_idx + 2 >= num_batches
            else:
                batch = prefetched.pop()
                try:
                    prefetched.append(next(iterator))
                except StopIteration:
                    self.is_last_batch = True
            if not run_batch(batch):
                break
            stop = self._poll_signals()  # SIGTERM / Ctrl-C seen (on any rank): stop here, on every rank
            if stop:
                trainer._signals.stop_at_batch_boundary(trainer, stop)
            if trainer.should_stop and self._can_stop_early:
                break

    def _run_epoch_step_fetches(self, fetcher: _DataLoaderIterDataFetcher) -> None:
        """The epoch when `training_step(self, dataloader_iter)` fetches its batches: one step per iteration until
        the fetcher is done (a StopIteration out of the step ends the epoch). The batch hooks get the batch the step
        fetched last (before the step: the previous one, None at first), which stays where the loader put it."""
        trainer = self.trainer
        progress = self._batch_progress
        results = trainer._train_results
        profiling = trainer.profiler.profiling
        while not fetcher.done:
            if trainer._cfg.max_steps != -1 and trainer.global_step >= trainer._cfg.max_steps:
                break
            dataloader_iter = next(fetcher)
            self.epoch_batch_idx += 1
            self.total_batch_idx += 1
            self._accumulating = self._should_accumulate()
            progress.is_last_batch = self.is_last_batch = fetcher.done
            progress.increment_ready()
            trainer._hub.on_batch_start(results, fetcher._batch)
            trainer._call_callbacks("on_train_batch_start", fetcher._batch, fetcher._batch_idx)
            if trainer._call_module("on_train_batch_start", fetcher._batch, fetcher._batch_idx) == -1:
                progress.increment_processed()
                self.is_last_batch = progress.is_last_batch = True
                return
            progress.increment_started()
            try:
                with trainer.profiler.profile("run_training_batch") if profiling else nullcontext():
                    if self._automatic:
                        output = self._automatic_step((dataloader_iter,), self.epoch_batch_idx)
                    else:
                        output = self._manual_step((dataloader_iter,))
            except StopIteration:  # the step asked for a batch past the end (or raised it to end the epoch)
                return
            progress.increment_processed()
            self.is_last_batch = progress.is_last_batch = fetcher.done
            if trainer.lr_scheduler_configs:
                self._update_lr_schedulers("step", plateau=False)
                if self._num_ready_batches_reached():
                    self._update_lr_schedulers("epoch", plateau=False)
            trainer._call_callbacks("on_train_batch_end", output, fetcher._batch, fetcher._batch_idx)
            trainer._call_module("on_train_batch_end", output, fetcher._batch, fetcher._batch_idx)
            trainer._hub.on_batch_end(results)
            progress.increment_completed()
            if trainer.loggers and not (self._automatic and self._accumulating):
                self._log_train_step()
            self._after_batch()
            if trainer.should_stop and self._can_stop_early:
                return

    def _should_accumulate(self) -> bool:
        """True when this batch only accumulates gradients (no optimizer step)."""
        ready = self.epoch_batch_idx + 1
        accumulation_done = ready % self.trainer._cfg.accumulate_grad_batches == 0
        return not accumulation_done and not self._num_ready_batches_reached()

    def _num_ready_batches_reached(self) -> bool:
        return self.epoch_batch_idx + 1 == self.trainer.num_training_batches or self.is_last_batch

    def _run_batch(self, batch: Any) -> bool:
        """One training batch; False when the epoch must end (on_train_batch_start returned -1)."""
        trainer = self.trainer
        self.epoch_batch_idx += 1
        self.total_batch_idx += 1
        batch_idx = self.epoch_batch_idx
        # fixed for this batch (only on_train_batch_start returning -1 changes is_last_batch, and then we stop)
        self._accumulating = self._should_accumulate()
        batch = trainer._batch_to_device(batch, 0)
        if trainer._cfg.channels_last:  # Trainer(channels_last=True): 4-D float inputs too
            batch = batch_channels_last(batch)
        progress = self._batch_progress
        progress.is_last_batch = self.is_last_batch
        progress.increment_ready()
        results = trainer._train_results
        trainer._hub.on_batch_start(results, batch)
        active = trainer._active_hooks  # hooks nobody listens to are not dispatched (resolved once per run)
        output: Any = None
        skip_rest = False
        if batch is None:
            rank_zero_warn("train_dataloader yielded None. If this was on purpose, ignore this warning...")
        else:
            response = None
            if "on_train_batch_start" in active:
                trainer._call_callbacks("on_train_batch_start", batch, batch_idx)
                response = trainer._call_module("on_train_batch_start", batch, batch_idx)
            skip_rest = response == -1
            if skip_rest:
                self.is_last_batch = progress.is_last_batch = True
            else:
                progress.increment_started()
                batch_args = (batch, batch_idx) if self._pass_batch_idx else (batch,)
                if self._graph is not None and self._graph.takes(batch):
                    output = self._graph.run(batch_args, batch_idx)  # whole step as one CUDA graph (graph_step.py)
                elif self._direct_step:
                    if self._accumulating and self._distributed:  # no gradient all-reduce on this micro-batch
                        with trainer.strategy.block_backward_sync():
                            output = self._direct_automatic_step(batch_args, batch_idx)
                    else:
                        output = self._direct_automatic_step(batch_args, batch_idx)
                elif self._automatic:
                    output = self._automatic_step(batch_args, batch_idx)
                else:
                    output = self._manual_step(batch_args)
        progress.increment_processed()
        if trainer.lr_scheduler_configs:
            self._update_lr_schedulers("step", plateau=False)
            if self._num_ready_batches_reached():
                self._update_lr_schedulers("epoch", plateau=False)
        if skip_rest:
            return False
        if "on_train_batch_end" in active:
            trainer._call_callbacks("on_train_batch_end", output, batch, batch_idx)
            trainer._call_module("on_train_batch_end", output, batch, batch_idx)
        trainer._hub.on_batch_end(results)
        progress.increment_completed()
        if trainer.loggers and not (self._automatic and self._accumulating):
            self._log_train_step()
        self._after_batch()
        return True

    def _log_train_step(self) -> None:
        trainer = self.trainer
        if trainer.loggers and trainer._hub.should_update_logs:
            trainer._hub.update_train_step_metrics(trainer._train_results, True)

    def _after_batch(self, run_validation: bool = True, force_validation: bool = False) -> None:
        """After a training batch: the time limit, validation when due (`force_validation`: again, a resumed run
        redoing the validation an exception interrupted at this point), the schedulers, the step count."""
        trainer = self.trainer
        cfg = trainer._cfg
        if cfg.max_time is not None and self._time_is_up():
            trainer.should_stop = True  # Lightning's Timer callback, checked at each batch end
        if force_validation or (run_validation and self._should_check_val()):
            self._run_validation()
        if trainer.lr_scheduler_configs:
            self._update_lr_schedulers("step", plateau=True)
        if not (self._automatic and self._accumulating):
            trainer._batches_that_stepped += 1
        if trainer.should_stop:
            for logger in trainer.loggers:
                logger.save()

    def _run_validation(self) -> None:
        trainer = self.trainer
        hub = trainer._hub
        first_loop_iter = hub.first_loop_iter
        if not self._accumulating:
            trainer._call_module("on_validation_model_zero_grad")
        self.epoch_loop.val_loop.run()  # trainer.validate_loop's run, reached as Lightning's users patch it
        self._count_validation_run()
        trainer.training = True
        trainer.validating = False
        trainer.state.stage = "train"
        trainer._active_results = trainer._train_results
        hub.first_loop_iter = first_loop_iter

    def _time_is_up(self) -> bool:
        trainer = self.trainer
        up = time.monotonic() - trainer._train_start_time >= trainer._cfg.max_time
        if self._distributed:  # rank 0's clock decides for all (the ranks must stop at the same batch)
            up = trainer.strategy.broadcast(up)
        return up

    def _should_check_val(self) -> bool:
        trainer = self.trainer
        if not self._val_this_epoch:
            return False
        infinite = trainer.val_check_batch == float("inf")
        # a dataloader_iter step may fetch several batches: its epoch validates after its last step
        if self.is_last_batch and (infinite or self._step_fetches):
            return True
        if trainer.should_stop and self._can_stop_early:
            return True
        seconds = trainer._cfg.val_check_time_interval
        if seconds is not None:  # time-based val_check_interval: since the last validation (or the start)
            return time.monotonic() - trainer._last_val_time >= seconds
        is_check = self.is_last_batch
        if isinstance(trainer._cfg.limit_train_batches, int) and infinite:
            is_check = (self.epoch_batch_idx + 1) % trainer._cfg.limit_train_batches == 0
        elif not infinite:
            it = self.total_batch_idx if trainer._cfg.check_val_every_n_epoch is None else self.epoch_batch_idx
            is_check = (it + 1) % trainer.val_check_batch == 0
        return is_check

    def _end_epoch(self) -> None:
        trainer = self.trainer
        hub = trainer._hub
        results = trainer._train_results
        hub.epoch_end_reached()
        progress = trainer.loop_progress.fit
        progress.epoch.increment_processed()
        trainer._call_callbacks("on_train_epoch_end")
        trainer._call_module("on_train_epoch_end")
        trainer._call_callbacks("on_train_epoch_end:monitoring")
        hub.on_epoch_end(results)
        # after a restore Lightning skips the plateau schedulers once: the metrics they monitor were not saved
        if not self._restarting and self._num_ready_batches_reached():
            self._update_lr_schedulers("epoch", plateau=True)
        trainer._batches_that_stepped -= 1  # epoch metrics are logged at the last step's index
        hub.update_train_epoch_metrics(results)
        trainer._batches_that_stepped += 1
        progress.epoch.increment_completed()  # trainer.current_epoch moves on
        if trainer._cfg.max_time is not None and self._time_is_up():
            trainer.should_stop = True

    # ------------------------------------------------------------------------------------- optimization
    def _can_step_directly(self, module: Any) -> bool:
        """True when running the closure before `optimizer.step()` is indistinguishable from Lightning's
        `optimizer_step -> optimizer.step(closure)`: the user did not override `optimizer_step`, the optimizer is
        one of torch's own (they call the closure once, first thing; LBFGS excepted), no step pre-hooks are
        registered, and the precision plugin steps plainly (no GradScaler)."""
        from fastlight.core.module import LightningModule

        trainer = self.trainer
        if not self._automatic or len(trainer.optimizers) != 1:
            return False
        if type(module).optimizer_step is not LightningModule.optimizer_step or "optimizer_step" in vars(module):
            return False
        opt = trainer.optimizers[0]
        cls = type(opt)
        precision = trainer._precision
        engine = precision._engine
        fused = engine is not None and engine.manages(opt)
        if not (cls.__module__.startswith("torch.optim.") or fused) or isinstance(opt, torch.optim.LBFGS):
            return False
        import torch.optim.optimizer as torch_optimizer

        if getattr(opt, "_optimizer_step_pre_hooks", None) or torch_optimizer._global_optimizer_pre_hooks:
            return False
        if fused:  # the engine's step runs the same hooks in the same order (see fused_step.py)
            return type(precision).optimizer_step in (Precision.optimizer_step, MixedPrecision.optimizer_step)
        return precision.scaler is None and type(precision).optimizer_step is Precision.optimizer_step

    def _automatic_step(self, batch_args: tuple, batch_idx: int) -> Dict[str, Any]:
        trainer = self.trainer
        # as in Lightning: zero_grad/backward/on_before_optimizer_step get the torch optimizer, the
        # optimizer_step hook gets the LightningOptimizer (whose step() runs the closure)
        optimizer = trainer.optimizers[0] if trainer.optimizers else None
        zero_grad = batch_idx % trainer._cfg.accumulate_grad_batches == 0
        closure = _Closure(self, batch_args, batch_idx, zero_grad, optimizer)
        if self._should_accumulate():
            if self._distributed:  # no gradient all-reduce on a micro-batch that does not step
                with trainer.strategy.block_backward_sync():
                    closure()
            else:
                closure()
        else:
            self._step_progress.increment_ready()
            trainer._call_module("optimizer_step", trainer.current_epoch, batch_idx,
                                 trainer._lightning_optimizers[0] if trainer._lightning_optimizers else None, closure)
            self._step_progress.increment_completed()  # trainer.global_step moves on
        result = closure.result
        if result is _SKIPPED:
            raise MisconfigurationException(
                "The closure hasn't been executed. HINT: did you call `optimizer_closure()` in your"
                " `optimizer_step` hook? It could also happen because the `optimizer.step(optimizer_closure)`"
                " call did not execute it internally."
            )
        return result

    def _direct_automatic_step(self, batch_args: tuple, batch_idx: int) -> Dict[str, Any]:
        """The closure's work, then `optimizer.step()`: same hooks, same order, same numbers as the closure path
        (see `_can_step_directly`), without the closure/partial/wrapper layers. The fused engine plugs in here."""
        trainer = self.trainer
        optimizer = trainer.optimizers[0]  # the torch optimizer, as Lightning passes to these hooks
        if not self._accumulating:  # counted as in Lightning, where training_step runs inside the optimizer step
            self._step_progress.increment_ready()
        loss, extra = self._training_step(batch_args)
        if batch_idx % trainer._cfg.accumulate_grad_batches == 0 and not self._skip_backward:
            self._zero_grad(batch_idx, optimizer)
        if loss is None:
            self._warn_none()
        elif not self._skip_backward:
            if self._strategy_backward is None:
                trainer._precision.backward(trainer, loss, optimizer)
            else:  # a strategy that takes over the backward (Lightning's loop always calls strategy.backward)
                self._strategy_backward(loss, optimizer)
        if not self._accumulating:
            if self._engine_step is not None:  # hooks, clipping, one stats pass, the fused step, scale update
                self._engine_step(trainer, trainer._precision, optimizer, loss)
            else:
                if self._pre_step_work:
                    # torch's optimizer.step runs the closure (and so these hooks) under enable_grad
                    trainer._precision._after_closure(trainer, optimizer)
                if not (self._fused_plain_step and optimizer.step_unobserved()):
                    optimizer.step()
            self._step_progress.increment_completed()  # trainer.global_step moves on
        if loss is None:
            return {}
        detached = loss.detach()
        return {"loss": detached, **extra} if extra else {"loss": detached}

    def _training_step(self, batch_args: tuple) -> tuple:
        trainer = self.trainer
        module = trainer._module
        d = module.__dict__  # plain dict writes: nn.Module.__setattr__ is slow
        prev = d["_current_fx_name"]
        d["_current_fx_name"] = "training_step"
        if self._plain_forward:
            output = self._training_step_fn(*batch_args)
        else:
            with trainer._precision.forward_context():
                output = self._training_step_fn(*batch_args)
        d["_current_fx_name"] = prev
        if isinstance(output, Tensor):
            loss, extra = output, {}
        elif isinstance(output, Mapping):  # any mapping, as Lightning
            loss = output.get("loss")
            if loss is None:
                raise TrainingStepError(
                    "In automatic_optimization, when `training_step` returns a dict, the 'loss' key needs to be"
                    f" present (got keys {sorted(output)})"
                )
            extra = {k: v for k, v in output.items() if k != "loss"}
        elif output is None:
            if trainer.world_size > 1:  # the other ranks would wait for this one's gradients
                raise RuntimeError(
                    "Skipping the `training_step` by returning None in distributed training is not supported."
                    " Rewrite the training logic so that every rank steps (e.g. a zero loss instead of None)."
                )
            return None, {}
        else:
            raise TrainingStepError(
                "In automatic optimization, `training_step` must return a Tensor, a dict, or None (where the step"
                f" will be skipped); got {type(output).__name__}."
            )
        if not isinstance(loss, Tensor) or loss.numel() != 1:
            shape = tuple(loss.shape) if isinstance(loss, Tensor) else type(loss).__name__
            raise TrainingStepError(
                f"`training_step` must return a scalar loss (one element) for automatic optimization; got {shape}."
                " Reduce it (e.g. `.mean()`) first."
            )
        accumulate = trainer._cfg.accumulate_grad_batches
        if accumulate != 1:
            loss = loss / accumulate
        return loss, extra

    def _zero_grad(self, batch_idx: int, optimizer: Any) -> None:
        trainer = self.trainer
        progress = self._zero_grad_progress
        progress.increment_ready()
        active = trainer._active_hooks
        if "on_before_zero_grad" in active:
            trainer._call_callbacks("on_before_zero_grad", optimizer)
            trainer._call_module("on_before_zero_grad", optimizer)
        progress.increment_started()
        if "optimizer_zero_grad" in active:
            trainer._call_module("optimizer_zero_grad", trainer.current_epoch, batch_idx, optimizer)
        else:
            optimizer.zero_grad()  # LightningModule.optimizer_zero_grad's body
        progress.increment_completed()

    def _warn_none(self) -> None:
        if not self._warned_none:
            self._warned_none = True
            rank_zero_warn("`training_step` returned `None`. If this was on purpose, ignore this warning...")

    def _manual_step(self, batch_args: tuple) -> Dict[str, Any]:
        trainer = self.trainer
        module = trainer._module
        prev = module._current_fx_name
        module.__dict__["_current_fx_name"] = "training_step"  # plain dict write: nn.Module.__setattr__ is slow
        with trainer._precision.forward_context():
            output = self._training_step_fn(*batch_args)
        module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow
        if isinstance(output, dict):
            extra = dict(output)
        elif isinstance(output, Tensor):
            extra = {"loss": output}
        elif output is None:
            extra = {}
        else:
            raise TrainingStepError(
                "In manual optimization, `training_step` must either return a Tensor or have no return."
            )
        if "loss" in extra and isinstance(extra["loss"], Tensor):
            extra["loss"] = extra["loss"].detach()
        return extra

    def _manual_on_before_step(self) -> None:
        self.trainer.loop_progress.fit.manual_step.increment_ready()

    def _manual_on_after_step(self) -> None:
        self.trainer.loop_progress.fit.manual_step.increment_completed()  # trainer.global_step moves on

    def _update_lr_schedulers(self, interval: str, plateau: bool) -> None:
        trainer = self.trainer
        configs = trainer.lr_scheduler_configs
        if not configs or not self._automatic:
            return
        if interval == "step" and self._should_accumulate():
            return
        idx = (self.epoch_batch_idx if interval == "step" else trainer.current_epoch) + 1
        for config in configs:
            if plateau != config.reduce_on_plateau or config.interval != interval or idx % config.frequency:
                continue
            metric = None
            if config.reduce_on_plateau:
                metric = self.epoch_loop._get_monitor_value(config.monitor)
                if metric is None:
                    if config.strict:
                        raise MisconfigurationException(
                            f"ReduceLROnPlateau conditioned on metric {config.monitor!r} which is not available."
                            f" Available metrics are: {list(trainer.callback_metrics)}."
                            " Condition can be set using `monitor` key in lr scheduler dict"
                        )
                    rank_zero_warn(
                        f"ReduceLROnPlateau conditioned on metric {config.monitor} which is not available but strict"
                        " is set to `False`. Skipping learning rate update.", category=RuntimeWarning,
                    )
                    continue
            progress = trainer.loop_progress.fit.scheduler
            progress.increment_ready()
            trainer._call_module("lr_scheduler_step", config.scheduler, metric)
            progress.increment_completed()

    def teardown(self) -> None:
        self._iterator = None
        if self._data_fetcher is not None:
            self._data_fetcher.teardown()
            self._data_fetcher = None

    # ------------------------------------------------------------------------------------- tuner runs
    _SNAPSHOT_FIELDS = ("epoch_batch_idx", "total_batch_idx", "is_last_batch", "_resume_pending", "_resume",
                        "_resuming", "_restarting", "validation_has_run")

    def snapshot(self) -> Dict[str, Any]:
        """Every counter a run moves (the loop's and the fit progress, which holds current_epoch / global_step): the
        tuners run the loop for a few steps, then put this back (Lightning's `fit_loop.state_dict()` /
        `load_state_dict`)."""
        return {
            "loop": {name: getattr(self, name) for name in self._SNAPSHOT_FIELDS},
            "progress": deepcopy(self.trainer.loop_progress.fit.state_dict()),
        }

    def load_snapshot(self, snapshot: Dict[str, Any]) -> None:
        trainer = self.trainer
        for name, value in snapshot["loop"].items():
            setattr(self, name, value)
        trainer.loop_progress.fit.load_state_dict(deepcopy(snapshot["progress"]))
        trainer.should_stop = False

    # ------------------------------------------------------------------------------------- checkpoint counters
    # trainer.loop_progress.fit holds the fit's counters (fastlight/loops/progress.py); the loop moves them
    @property
    def _batch_progress(self) -> Any:
        return self.trainer.loop_progress.fit.batch

    @property
    def _step_progress(self) -> Any:
        return self.trainer.loop_progress.fit.optim.optimizer.step

    @property
    def _zero_grad_progress(self) -> Any:
        return self.trainer.loop_progress.fit.optim.optimizer.zero_grad

    def _reset_epoch_progress(self) -> None:
        """Lightning's epoch-loop reset at a new epoch: per-epoch ("current") counters start over (the manual
        optimizer steps' do not, as in Lightning); the fit's validation counts its batches per epoch."""
        progress = self.trainer.loop_progress.fit
        progress.batch.reset_on_run()
        progress.scheduler.reset_on_run()
        progress.optim.reset_on_run()
        progress.val_batch.total.reset()

    def _count_validation_run(self) -> None:
        """The validation that just ran counted its batches (Lightning's epoch_loop.val_loop.batch_progress)."""
        self.validation_has_run = self.trainer.validate_loop._has_run

    def on_restored(self, checkpoint: Optional[Dict[str, Any]] = None, source: str = "the checkpoint") -> None:
        """trainer.loop_progress was loaded from a checkpoint (current_epoch and global_step with it); `run` works out
        where to go on (with the checkpoint's random and loader state for this rank when it has one:
        resume_state.py)."""
        trainer = self.trainer
        if checkpoint is not None:
            self._exact = resume_state.state_for_this_rank(trainer, checkpoint, source)
            fit_state = checkpoint.get("loops", {}).get("fit_loop", {}).get("state_dict", {})
            self._loader_states_to_load = list(fit_state.get("combined_loader", []))
            if self._loader_states_to_load and self.loader is not None:  # loaded early (estimated_stepping_batches)
                self._iterator = self._new_iterator()  # the stateful loaders' states go in before iter()
        self._resume_pending = True
        # Lightning's `restarting`: the restored epoch had not finished (or the fit counts steps, not epochs); then the
        # sanity check is skipped, and the plateau schedulers skip that epoch's end
        epoch = trainer.loop_progress.fit.epoch.current
        unfinished = epoch.ready != epoch.processed or epoch.started != epoch.processed
        self._restarting = unfinished or trainer._cfg.max_steps != -1

    def _validation_was_interrupted(self) -> bool:
        """The restored counters stop inside a validation batch (an exception there, saved by OnExceptionCheckpoint):
        that validation did not finish, and the resumed run does it again."""
        current = self.trainer.loop_progress.fit.val_batch.current
        return current.ready != current.completed

    def _apply_resume(self) -> None:
        """Continue where the restored counters say (Lightning 2.6's restart rules, `resume_point`)."""
        from fastlight.trainer.checkpoint_layout import resume_point

        self._resume_pending = False
        trainer = self.trainer
        progress = trainer.loop_progress.fit
        self._resuming = True
        exact, self._exact = self._exact, None
        # normalizes the counters in place (partial events dropped): current_epoch / global_step follow
        point = resume_point(progress, trainer.num_training_batches, trainer._cfg.accumulate_grad_batches,
                             replay_tail=exact is not None and exact["phase"] == resume_state.PHASE_TRAIN_BATCH_END,
                             iteration_based=trainer._cfg.max_steps != -1)
        if point.mid_epoch:
            self._resume = point
            self.total_batch_idx = progress.batch.total.completed - 1
        if exact is not None:
            resume_state.on_resume(self, exact, point)

    def _fast_forward(self, iterator: Any, num_batches: int, exact: bool = False) -> None:
        """Skip the batches of this epoch that ran before the checkpoint, so a mid-epoch resume continues with the
        next batch (Lightning restarts a plain dataloader from its first batch instead). A single-process map-style
        DataLoader skips sampler indices only; anything else (several loaders' combined batches too) loads the
        batches and drops them."""
        rank_zero_info(
            f"Resuming in the middle of epoch {self.trainer.current_epoch}: skipping its first {num_batches} batches"
            + (" (the data order and random state saved with the checkpoint are restored)." if exact else
               " (an exact resume needs a data order that does not depend on the global RNG).")
        )
        self.epoch_batch_idx = num_batches - 1
        sampler_iter = getattr(iterator, "_sampler_iter", None)
        if type(iterator).__name__ == "_SingleProcessDataLoaderIter" and getattr(iterator, "_dataset_kind", None) == 0 \
                and sampler_iter is not None:
            for _ in range(num_batches):
                next(sampler_iter)
            iterator._num_yielded += num_batches
            return
        for _ in range(num_batches):
            next(iterator)


def _numbered(iterator: Any, start: int) -> Any:
    """The epoch's batches as the fetchers see a loader's: (batch, batch_idx, dataloader_idx=0)."""
    return ((batch, batch_idx, 0) for batch_idx, batch in enumerate(iterator, start))


class _ProfiledIterator:
    """next() of a data iterator timed by the profiler."""

    def __init__(self, iterator: Any, profiler: Any, action: str) -> None:
        self._it, self._profiler, self._action = iterator, profiler, action

    def __iter__(self) -> "_ProfiledIterator":
        return self

    def __next__(self) -> Any:
        with self._profiler.profile(self._action):
            return next(self._it)
