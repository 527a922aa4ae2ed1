"""The validation/test loop and the prediction loop, hooks in Lightning's order:

    [iterator of dataloader 0 created]
    on_{validation,test}_model_eval
    on_{stage}_start, on_{stage}_epoch_start
    for each dataloader, for each batch:
        on_before_batch_transfer, transfer_batch_to_device, on_after_batch_transfer
        on_{stage}_batch_start, {validation,test}_step, on_{stage}_batch_end
    on_{stage}_epoch_end, on_{stage}_end
    on_{stage}_model_train (or the module's train/eval modes restored)

A step written `{validation,test}_step(self, dataloader_iter)` fetches its own batches (`_run_step_fetches`) through
the loop's `_data_fetcher` (a loops.fetchers._DataLoaderIterDataFetcher over the dataloaders in sequence, each up to
its limit): no device transfer hooks; the batch hooks get the batch fetched last.

Prediction: on_predict_model_eval, on_predict_start, on_predict_epoch_start, per batch
on_predict_batch_start / predict_step / on_predict_batch_end, on_predict_epoch_end, on_predict_end
(`predict_step(self, dataloader_iter)`: PredictionLoop._run_step_fetches, as the evaluation loop's).
With a BasePredictionWriter among the callbacks, each predict DataLoader is re-created with a batch sampler that
records the sample indices of each batch (current_batch_indices, epoch_batch_indices), as Lightning does.
"""
import inspect
import os
import shutil
import time
from typing import Any, Dict, List, Optional, Tuple

import torch
from torch import Tensor

from fastlight.loops.fetchers import _DataLoaderIterDataFetcher, _dataloader_iter_fetcher
from fastlight.strategies.data import IndexRecordingBatchSampler, record_batch_indices, set_sampler_epoch
from fastlight.trainer import input_path
from fastlight.trainer.config import parse_num_batches
from fastlight.trainer.fit_loop import _ProfiledIterator, _sized_len, _takes_batch_idx
from fastlight.trainer.loop_views import EvaluationLoopViews
from fastlight.trainer.results import ResultCollection, to_scalars
from fastlight.utilities.apply_func import move_data_to_device
from fastlight.utilities.combined_loader import CombinedLoader
from fastlight.utilities.rank_zero import rank_zero_warn


def _as_loader_list(loaders: Any) -> List[Any]:
    if loaders is None or (isinstance(loaders, (list, tuple)) and not loaders):  # `[]`: no dataloaders, as Lightning
        return []
    if isinstance(loaders, dict):
        return list(loaders.values())
    if isinstance(loaders, (list, tuple)) and loaders and all(hasattr(x, "__iter__") and not isinstance(x, Tensor)
                                                              for x in loaders):
        first = loaders[0]
        if not isinstance(first, (list, tuple, dict)):
            return list(loaders)
    return [loaders]


def _check_dataloader_idx(module: Any, hooks: Tuple[str, ...], several: bool, prefix: str) -> None:
    """Lightning's rule for `dataloader_idx` in the step and batch hooks: with several dataloaders (run one after the
    other) each hook must take it (by that name, or *args); with one, it may take it only with a default."""
    for hook in hooks:
        try:
            params = inspect.signature(getattr(module, hook)).parameters
        except (TypeError, ValueError):
            continue
        named = params.get("dataloader_idx")
        takes_it = named is not None or any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params.values())
        where = f"`{type(module).__name__}.{hook}()`"
        if several and not takes_it:
            raise RuntimeError(
                f"You provided multiple `{prefix}_dataloader`s, but there is no `dataloader_idx` argument in {where}:"
                " add `dataloader_idx=0` to its signature."
            )
        if not several and named is not None and named.default is inspect.Parameter.empty:
            raise RuntimeError(
                f"You provided a single `{prefix}_dataloader`, but have included `dataloader_idx` in {where} without"
                " a default: remove it or give it one (`dataloader_idx=0`)."
            )


def _start_fetcher(fetcher: _DataLoaderIterDataFetcher, loaders: List[Any], max_batches: List[float],
                   profiler: Any, action: str) -> None:
    """The fetcher over the dataloaders one after the other, each up to its limit (Lightning's "sequential" mode);
    iter() creates the first dataloader's iterator. Each fetch is timed when a profiler records."""
    combined = CombinedLoader(list(loaders), "sequential")
    combined.limits = list(max_batches)
    fetcher.setup(combined)
    if profiler.profiling:
        fetcher._start_profiler = lambda: profiler.start(action)
        fetcher._stop_profiler = lambda: profiler.stop(action)
    iter(fetcher)


def _fetched_hook_args(fetcher: _DataLoaderIterDataFetcher, several: bool) -> tuple:
    """The batch hooks' (batch, batch_idx[, dataloader_idx]) in the dataloader_iter flavour: the last batch fetched."""
    if several:
        return fetcher._batch, fetcher._batch_idx, fetcher._dataloader_idx
    return fetcher._batch, fetcher._batch_idx


def _iterate(loader: Any, batched: bool, profiler: Any, action: str) -> Any:
    """The loader's iterator (batched fetch when it qualifies: input_path.py), each next() timed when a profiler
    records."""
    iterator = input_path.iterate(loader, batched)
    return _ProfiledIterator(iterator, profiler, action) if profiler.profiling else iterator


class _ModuleMode:
    """The train/eval mode of every submodule, captured before evaluation and restored after."""

    def capture(self, module: torch.nn.Module) -> None:
        self.modes = [(m, m.training) for m in module.modules()]

    def restore(self, module: torch.nn.Module) -> None:
        for m, mode in self.modes:
            m.training = mode


class EvaluationLoop(EvaluationLoopViews):  # Lightning's loop attributes: views (loop_views.py)
    def __init__(self, trainer: Any, fn: str) -> None:
        self.trainer = trainer
        self.fn = fn  # "validate" | "test"
        self.stage = "validation" if fn == "validate" else "test"
        self.prefix = "val" if fn == "validate" else "test"
        self.verbose = True
        self.loaders: Optional[List[Any]] = None
        self._max_batches: List[float] = []
        self._mode = _ModuleMode()
        self._last_reload_epoch = float("-inf")
        self.results = ResultCollection(training=False)
        # `{stage}_step(self, dataloader_iter)`: the fetcher the step fetches through, during a run (else None)
        self._data_fetcher: Optional[_DataLoaderIterDataFetcher] = None

    def reset_data(self) -> None:
        self.loaders = None
        self._last_reload_epoch = float("-inf")

    def setup_data(self) -> None:
        trainer = self.trainer
        fitting = trainer.state.fn == "fit"
        reload_n = trainer._cfg.reload_dataloaders_every_n_epochs
        should_reload = bool(reload_n) and trainer.current_epoch - self._last_reload_epoch >= reload_n
        if self.loaders is not None and fitting and not should_reload:
            return
        limit = getattr(trainer._cfg, f"limit_{self.prefix}_batches")
        if limit == 0:
            self.loaders, self._max_batches = [], []
            return
        if fitting and (not trainer.sanity_checking or trainer.fit_loop._should_check_val_epoch()):
            self._last_reload_epoch = trainer.current_epoch
        raw = trainer._request_dataloader(self.prefix)
        setattr(trainer, f"{self.prefix}_dataloaders", raw)
        self.loaders = _as_loader_list(raw)
        self._max_batches = [parse_num_batches(self.prefix, _sized_len(dl), limit) for dl in self.loaders]
        setattr(trainer, f"num_{self.prefix}_batches", list(self._max_batches))
        if fitting:
            trainer.num_sanity_val_batches = [min(trainer._cfg.num_sanity_val_steps, b) for b in self._max_batches]
        # the logging step of eval step-metrics counts on across a fit's validation runs (Lightning does this)
        self._seen = [0] * len(self.loaders)

    @property
    def max_batches(self) -> List[float]:
        if self.trainer.sanity_checking:
            return [min(self.trainer._cfg.num_sanity_val_steps, b) for b in self._max_batches]
        return self._max_batches

    def run(self) -> List[Dict[str, Any]]:
        trainer = self.trainer
        fitting = trainer.state.fn == "fit"
        grad_ctx = torch.inference_mode() if (trainer._cfg.inference_mode and not fitting) else torch.no_grad()
        with grad_ctx:
            try:
                return self._run(trainer, fitting)
            finally:
                if self._data_fetcher is not None:  # the dataloaders' iterators (and workers) go
                    self._data_fetcher.teardown()
                    self._data_fetcher = None

    def _run(self, trainer: Any, fitting: bool) -> List[Dict[str, Any]]:
        if fitting:
            trainer.training = False
            trainer.validating = True
            if not trainer.sanity_checking:  # Lightning: "validate" inside a fit; the sanity check keeps its stage
                trainer.state.stage = "validate"
        else:
            trainer.validating = self.fn == "validate"
            trainer.testing = self.fn == "test"
            trainer.state.stage = self.fn
        trainer._active_results = self.results
        self.setup_data()
        max_batches = self.max_batches
        if sum(max_batches) == 0:
            return []
        if fitting and trainer.sanity_checking:
            trainer.num_sanity_val_batches = list(max_batches)
        # Lightning's batch_progress: the fit's validation counts in its own counters (fit_loop.epoch_loop.val_loop)
        progress = trainer.loop_progress.fit.val_batch if fitting else self.batch_progress
        progress.reset_on_run()
        self._has_run = False
        hub = trainer._hub
        results = self.results
        module = trainer._module
        n_loaders = len(self.loaders)
        step_fn = getattr(module, f"{self.stage}_step")
        fetcher = self._data_fetcher = _dataloader_iter_fetcher(module, f"{self.stage}_step")
        # a step that fetches from dataloader_iter takes no dataloader_idx
        _check_dataloader_idx(module, (f"{self.stage}_step",), n_loaders > 1 and fetcher is None, self.prefix)
        _check_dataloader_idx(module, (f"on_{self.stage}_batch_start", f"on_{self.stage}_batch_end"), n_loaders > 1,
                              self.prefix)
        pass_batch_idx = _takes_batch_idx(step_fn)
        if trainer.strategy.is_distributed:  # through the wrapper (DDP syncs buffers, FSDP gathers parameters)
            step_fn = getattr(trainer.strategy, f"{self.stage}_step")
        if trainer.profiler.profiling:
            step_fn = trainer.profiler.wrap(f"[Strategy]{type(trainer.strategy).__name__}.{self.stage}_step", step_fn)
        if fitting:  # some users shuffle validation data by the training epoch (Lightning sets it too)
            for loader in self.loaders:
                set_sampler_epoch(loader, trainer.current_epoch)
        logged_outputs: List[Dict[str, Tensor]] = []
        batched = trainer._cfg.batched_input  # one index_select per tensor for TensorDataset loaders (input_path)
        profiler, fetch_action = trainer.profiler, f"[_EvaluationLoop].{self.prefix}_next"
        # the first iterator is made before the start hooks, as Lightning does (RNG order)
        if fetcher is not None:
            _start_fetcher(fetcher, self.loaders, max_batches, profiler, fetch_action)
        else:
            iterator = _iterate(self.loaders[0], batched, profiler, fetch_action)
        self._mode.capture(trainer.model)  # the wrapper (DDP) too, as the *_model_eval hooks switch it
        trainer._call_module(f"on_{self.stage}_model_eval")
        loaders = self.loaders
        trainer._call_callbacks(f"on_{self.stage}_start")
        trainer._call_module(f"on_{self.stage}_start")
        if self.loaders is not loaders:  # a batch-size search in the start hooks reloaded them: run the new ones
            max_batches = self.max_batches
            if fetcher is not None:
                _start_fetcher(fetcher, self.loaders, max_batches, profiler, fetch_action)
            else:
                iterator = iter(self.loaders[0])
        trainer._call_callbacks(f"on_{self.stage}_epoch_start")
        trainer._call_module(f"on_{self.stage}_epoch_start")
        seen = self._seen
        precision = trainer._precision
        batch_start, batch_end = f"on_{self.stage}_batch_start", f"on_{self.stage}_batch_end"
        step_name = f"{self.stage}_step"
        if fetcher is not None:  # the step fetches its batches
            self._run_step_fetches(fetcher, step_fn, progress, logged_outputs)
        for dl_idx in range(n_loaders if fetcher is None else 0):  # else: each dataloader's batches, in order
            if dl_idx > 0:
                iterator = _iterate(self.loaders[dl_idx], batched, profiler, fetch_action)
            limit = max_batches[dl_idx]
            batch_idx = 0
            dl_arg = dl_idx if n_loaders > 1 else None
            while batch_idx < limit:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                batch = trainer._batch_to_device(batch, dl_idx)
                progress.is_last_batch = dl_idx == n_loaders - 1 and batch_idx + 1 >= limit
                progress.increment_ready()
                hub.on_batch_start(results, batch, dl_arg)
                hook_args = (batch, batch_idx) if dl_arg is None else (batch, batch_idx, dl_arg)
                trainer._call_callbacks(batch_start, *hook_args)
                trainer._call_module(batch_start, *hook_args)
                progress.increment_started()
                step_args = hook_args if pass_batch_idx else (batch,) + hook_args[2:]
                prev = module._current_fx_name
                module.__dict__["_current_fx_name"] = step_name  # plain dict write: nn.Module.__setattr__ is slow
                with precision.forward_context():
                    output = step_fn(*step_args)
                module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow
                progress.increment_processed()
                trainer._call_callbacks(batch_end, output, *hook_args)
                trainer._call_module(batch_end, output, *hook_args)
                hub.on_batch_end(results)
                progress.increment_completed()
                if not trainer.sanity_checking:
                    self._has_run = True
                    hub.update_eval_step_metrics(results, seen[dl_idx])
                    seen[dl_idx] += 1
                batch_idx += 1
            hub.epoch_end_reached()  # Lightning stores each dataloader's epoch metrics when it is exhausted
            logged_outputs.append(hub.update_eval_epoch_metrics(results, trainer.sanity_checking))
        # epoch end
        hub.epoch_end_reached()
        results.dataloader_idx = None
        trainer._call_callbacks(f"on_{self.stage}_epoch_end")
        trainer._call_module(f"on_{self.stage}_epoch_end")
        hub.on_epoch_end(results)
        epoch_end_logged = hub.update_eval_epoch_metrics(results, trainer.sanity_checking)
        all_logged: Dict[str, Tensor] = {}
        for d in reversed(logged_outputs):
            all_logged.update(d)
        all_logged.update(epoch_end_logged)
        for d in logged_outputs:
            d.update(epoch_end_logged)
        if not trainer.sanity_checking:
            hub.log_metrics(all_logged)
        trainer._call_callbacks(f"on_{self.stage}_end")
        trainer._call_module(f"on_{self.stage}_end")
        hub.reset_results(results)
        train_hook = f"on_{self.stage}_model_train"
        if trainer._has_hook(module, train_hook):
            trainer._call_module(train_hook)
        else:
            self._mode.restore(trainer.model)
        if self.verbose and not fitting and trainer.is_global_zero:
            _print_results(logged_outputs, self.fn)
        trainer._last_val_time = time.monotonic()
        return [to_scalars(d) for d in logged_outputs] if not fitting else logged_outputs

    def _run_step_fetches(self, fetcher: _DataLoaderIterDataFetcher, step_fn: Any, progress: Any,
                          logged_outputs: List[Dict[str, Tensor]]) -> None:
        """The batches when `{validation,test}_step(self, dataloader_iter)` fetches them: one step per iteration until
        the fetcher is done or the step raises StopIteration. The batch hooks get the batch fetched last (before the
        step: the previous one, None at first); a dataloader's epoch metrics are stored when the fetches move on to
        the next dataloader."""
        trainer = self.trainer
        hub, results, module = trainer._hub, self.results, trainer._module
        several = len(self.loaders) > 1
        batch_start, batch_end = f"on_{self.stage}_batch_start", f"on_{self.stage}_batch_end"
        step_name = f"{self.stage}_step"
        seen = self._seen
        previous_dl_idx = 0
        while not fetcher.done:
            dataloader_iter = next(fetcher)
            if fetcher._dataloader_idx != previous_dl_idx:
                hub.epoch_end_reached()
                logged_outputs.append(hub.update_eval_epoch_metrics(results, trainer.sanity_checking))
            previous_dl_idx = fetcher._dataloader_idx
            progress.is_last_batch = fetcher.done
            hook_args = _fetched_hook_args(fetcher, several)
            progress.increment_ready()
            hub.on_batch_start(results, fetcher._batch, fetcher._dataloader_idx if several else None)
            trainer._call_callbacks(batch_start, *hook_args)
            trainer._call_module(batch_start, *hook_args)
            progress.increment_started()
            prev = module._current_fx_name
            module.__dict__["_current_fx_name"] = step_name  # plain dict write: nn.Module.__setattr__ is slow
            try:
                with trainer._precision.forward_context():
                    output = step_fn(dataloader_iter)
            except StopIteration:  # the step asked for a batch past the end
                break
            finally:
                module.__dict__["_current_fx_name"] = prev
            progress.increment_processed()
            hook_args = _fetched_hook_args(fetcher, several)  # what the step fetched
            trainer._call_callbacks(batch_end, output, *hook_args)
            trainer._call_module(batch_end, output, *hook_args)
            hub.on_batch_end(results)
            progress.increment_completed()
            if not trainer.sanity_checking:
                self._has_run = True
                hub.update_eval_step_metrics(results, seen[fetcher._dataloader_idx])
                seen[fetcher._dataloader_idx] += 1
        hub.epoch_end_reached()  # the last dataloader's epoch metrics
        logged_outputs.append(hub.update_eval_epoch_metrics(results, trainer.sanity_checking))


def _print_results(outputs: List[Dict[str, Any]], stage: str) -> None:
    rows = sorted({k.split("/dataloader_idx_")[0] for d in outputs for k in d})
    if not rows:
        return
    width = shutil.get_terminal_size(fallback=(120, 30)).columns
    col = max(25, max(len(r) for r in rows) + 2)
    header = f"{stage.capitalize()} metric".center(col) + "".join(f"DataLoader {i}".center(col) for i in range(len(outputs)))
    lines = ["─" * min(width, len(header)), header.rstrip(), "─" * min(width, len(header))]
    for r in rows:
        cells = []
        for i, d in enumerate(outputs):
            v = d.get(r, d.get(f"{r}/dataloader_idx_{i}"))
            if isinstance(v, Tensor):
                v = v.item() if v.numel() == 1 else v.tolist()  # host sync: printing the final table
            cells.append("" if v is None else f"{v}")
        lines.append((r.center(col) + "".join(c.center(col) for c in cells)).rstrip())
    lines.append("─" * min(width, len(header)))
    print(os.linesep.join(lines))


class PredictionLoop(EvaluationLoopViews):  # Lightning's loop attributes: views (loop_views.py)
    fn = "predict"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.return_predictions = True
        self._mode = _ModuleMode()
        self._predictions: List[list] = []  # dataloaders x batches
        self._num_dataloaders = 0
        # for prediction writers: the indices of the current batch, and dataloaders x batches x samples
        self.current_batch_indices: List[int] = []
        self.epoch_batch_indices: List[List[List[int]]] = []
        # `predict_step(self, dataloader_iter)`: the fetcher the step fetches through, during a run (else None)
        self._data_fetcher: Optional[_DataLoaderIterDataFetcher] = None

    @property
    def predictions(self) -> Any:
        """The predictions kept so far: a list of batches, or one such list per dataloader when there are several."""
        if self._predictions == []:
            return self._predictions
        return self._predictions[0] if self._num_dataloaders == 1 else self._predictions

    def run(self) -> Optional[list]:
        trainer = self.trainer
        grad_ctx = torch.inference_mode() if trainer._cfg.inference_mode else torch.no_grad()
        with grad_ctx:
            try:
                return self._run(trainer)
            finally:
                if self._data_fetcher is not None:  # the dataloaders' iterators (and workers) go
                    self._data_fetcher.teardown()
                    self._data_fetcher = None

    def _writer_intervals(self, trainer: Any) -> "tuple[bool, bool]":
        """(a writer writes per batch, a writer writes per epoch)."""
        from fastlight.callbacks.prediction_writer import BasePredictionWriter

        writers = [cb for cb in trainer.callbacks if isinstance(cb, BasePredictionWriter)]
        return any(w.interval.on_batch for w in writers), any(w.interval.on_epoch for w in writers)

    def _index_recorders(self, loaders: List[Any]) -> "tuple[List[Any], List[Optional[IndexRecordingBatchSampler]]]":
        """The loaders to iterate, each re-created to record its batch indices where it can be."""
        out, recorders = [], []
        for dl in loaders:
            recorder = None
            if isinstance(dl, torch.utils.data.DataLoader):
                try:
                    dl = record_batch_indices(dl)
                    recorder = dl.batch_sampler
                except TypeError:
                    pass
            if recorder is None:
                rank_zero_warn(f"Couldn't infer the batch indices fetched from your dataloader: `{type(dl).__name__}`")
            out.append(dl)
            recorders.append(recorder)
        return out, recorders

    def _run(self, trainer: Any) -> Optional[list]:
        trainer.predicting = True
        trainer.state.stage = "predict"
        trainer._active_results = None
        limit = trainer._cfg.limit_predict_batches
        if limit == 0:
            return None
        raw = trainer._request_dataloader("predict")
        on_batch, on_epoch = self._writer_intervals(trainer)
        loaders = _as_loader_list(raw)
        recorders: List[Optional[IndexRecordingBatchSampler]] = [None] * len(loaders)
        if on_batch or on_epoch:
            given = loaders
            loaders, recorders = self._index_recorders(given)
            if any(a is not b for a, b in zip(given, loaders)):  # trainer.predict_dataloaders shows what runs
                if isinstance(raw, dict):
                    raw = dict(zip(raw.keys(), loaders))
                elif isinstance(raw, (list, tuple)) and len(raw) == len(given) and all(
                        a is b for a, b in zip(raw, given)):
                    raw = type(raw)(loaders)
                else:
                    raw = loaders[0]
        trainer.predict_dataloaders = raw
        max_batches = [parse_num_batches("predict", _sized_len(dl), limit) for dl in loaders]
        trainer.num_predict_batches = list(max_batches)
        if sum(max_batches) == 0:
            return None
        module = trainer._module
        n_loaders = len(loaders)
        step_fn = module.predict_step
        fetcher = self._data_fetcher = _dataloader_iter_fetcher(module, "predict_step")
        _check_dataloader_idx(module, ("predict_step",), n_loaders > 1 and fetcher is None, "predict")
        _check_dataloader_idx(module, ("on_predict_batch_start", "on_predict_batch_end"), n_loaders > 1, "predict")
        pass_batch_idx = _takes_batch_idx(step_fn)
        if trainer.strategy.is_distributed:
            step_fn = trainer.strategy.predict_step
        if trainer.profiler.profiling:
            step_fn = trainer.profiler.wrap(f"[Strategy]{type(trainer.strategy).__name__}.predict_step", step_fn)
        self._num_dataloaders = n_loaders
        predictions: List[list] = [[] for _ in loaders]
        self._predictions = predictions
        self.epoch_batch_indices = [[] for _ in loaders]
        # a per-epoch writer needs the predictions even when they are not returned
        keep_predictions = self.return_predictions or on_epoch
        progress = self.batch_progress
        progress.reset_on_run()
        profiler, fetch_action = trainer.profiler, "[_PredictionLoop].predict_next"
        if fetcher is not None:
            _start_fetcher(fetcher, loaders, max_batches, profiler, fetch_action)
        else:
            iterator = _iterate(loaders[0], False, profiler, fetch_action)
        self._mode.capture(trainer.model)  # the wrapper (DDP) too, as the *_model_eval hooks switch it
        trainer._call_module("on_predict_model_eval")
        trainer._call_callbacks("on_predict_start")
        trainer._call_module("on_predict_start")
        if self._predictions is not predictions:  # a batch-size search in the start hooks ran predictions itself
            loaders = _as_loader_list(trainer._request_dataloader("predict"))
            max_batches = [parse_num_batches("predict", _sized_len(dl), limit) for dl in loaders]
            trainer.num_predict_batches = list(max_batches)
            self._predictions = predictions
            if fetcher is not None:
                _start_fetcher(fetcher, loaders, max_batches, profiler, fetch_action)
            else:
                iterator = _iterate(loaders[0], False, profiler, fetch_action)
            self.epoch_batch_indices = [[] for _ in loaders]
            recorders = [None] * len(loaders)
            trainer.predict_dataloaders = loaders[0] if len(loaders) == 1 else loaders
        trainer._call_callbacks("on_predict_epoch_start")
        trainer._call_module("on_predict_epoch_start")
        precision = trainer._precision
        warned = False
        cpu = torch.device("cpu")
        if fetcher is not None:  # the step fetches its batches
            self._run_step_fetches(fetcher, step_fn, n_loaders > 1, predictions if keep_predictions else None)
        for dl_idx in range(n_loaders if fetcher is None else 0):  # else: each dataloader's batches, in order
            if dl_idx > 0:
                iterator = _iterate(loaders[dl_idx], False, profiler, fetch_action)
            dl_arg = dl_idx if n_loaders > 1 else None
            recorder = recorders[dl_idx]
            batch_idx = 0
            while batch_idx < max_batches[dl_idx]:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                batch = trainer._batch_to_device(batch, dl_idx)
                if recorder is not None:
                    indices = recorder.seen_batch_indices[batch_idx]
                    if on_epoch:
                        self.epoch_batch_indices[dl_idx].append(indices)
                    if on_batch:
                        self.current_batch_indices = indices
                hook_args = (batch, batch_idx) if dl_arg is None else (batch, batch_idx, dl_arg)
                progress.increment_ready()
                trainer._call_callbacks("on_predict_batch_start", *hook_args)
                trainer._call_module("on_predict_batch_start", *hook_args)
                progress.increment_started()
                step_args = hook_args if pass_batch_idx else (batch,) + hook_args[2:]
                prev = module._current_fx_name
                module.__dict__["_current_fx_name"] = "predict_step"  # plain dict write: nn.Module.__setattr__ is slow
                with precision.forward_context():
                    out = step_fn(*step_args)
                module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow
                progress.increment_processed()
                if out is None and not warned:
                    warned = True
                    rank_zero_warn("predict returned None if it was on purpose, ignore this warning...")
                trainer._call_callbacks("on_predict_batch_end", out, *hook_args)
                trainer._call_module("on_predict_batch_end", out, *hook_args)
                if keep_predictions:
                    predictions[dl_idx].append(move_data_to_device(out, cpu))
                progress.increment_completed()
                batch_idx += 1
        trainer._call_callbacks("on_predict_epoch_end")
        trainer._call_module("on_predict_epoch_end")
        result = self.predictions if self.return_predictions else None
        if not self.return_predictions:
            self._predictions = []
        self.epoch_batch_indices = []
        trainer._call_callbacks("on_predict_end")
        trainer._call_module("on_predict_end")
        self._mode.restore(trainer.model)
        return result

    def _run_step_fetches(self, fetcher: _DataLoaderIterDataFetcher, step_fn: Any, several: bool,
                          predictions: Optional[List[list]]) -> None:
        """The batches when `predict_step(self, dataloader_iter)` fetches them (see EvaluationLoop._run_step_fetches);
        each prediction is kept under the dataloader of the batch the step fetched last."""
        trainer = self.trainer
        module = trainer._module
        progress = self.batch_progress
        cpu = torch.device("cpu")
        warned = False
        while not fetcher.done:
            dataloader_iter = next(fetcher)
            progress.is_last_batch = fetcher.done
            progress.increment_ready()
            hook_args = _fetched_hook_args(fetcher, several)
            trainer._call_callbacks("on_predict_batch_start", *hook_args)
            trainer._call_module("on_predict_batch_start", *hook_args)
            progress.increment_started()
            prev = module._current_fx_name
            module.__dict__["_current_fx_name"] = "predict_step"  # plain dict write: nn.Module.__setattr__ is slow
            try:
                with trainer._precision.forward_context():
                    out = step_fn(dataloader_iter)
            except StopIteration:  # the step asked for a batch past the end
                break
            finally:
                module.__dict__["_current_fx_name"] = prev
            if out is None and not warned:
                warned = True
                rank_zero_warn("predict returned None if it was on purpose, ignore this warning...")
            progress.increment_processed()
            hook_args = _fetched_hook_args(fetcher, several)  # what the step fetched
            trainer._call_callbacks("on_predict_batch_end", out, *hook_args)
            trainer._call_module("on_predict_batch_end", out, *hook_args)
            progress.increment_completed()
            if predictions is not None:
                predictions[fetcher._dataloader_idx].append(move_data_to_device(out, cpu))
