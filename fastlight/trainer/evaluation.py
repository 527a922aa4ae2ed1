"""The validation/test loop and the prediction loop, hooks in Lightning's order:

    [iterator of dataloader 0 created]
    on_{validation,test}_model_eval
    on_{stage}_start, on_{stage}_epoch_start
    for each batch (EvaluationLoop._evaluation_step):
        on_before_batch_transfer, transfer_batch_to_device, on_after_batch_transfer
        on_{stage}_batch_start, {validation,test}_step, on_{stage}_batch_end
    on_{stage}_epoch_end (EvaluationLoop._on_evaluation_epoch_end), on_{stage}_end
    on_{stage}_model_train (or the module's train/eval modes restored)

The dataloaders (a list/tuple/dict, any nesting, flattened as CombinedLoader does) run one after the other, each
batch with its `dataloader_idx` when there are several; a CombinedLoader given in a parallel mode ("min_size",
"max_size_cycle", "max_size") runs in that mode instead: one batch holds a batch of each dataloader. A dataloader
hook that returns `[]` gives one empty iterable, so no batches run (Lightning's `num_val_batches == [0]`).

A step written `{validation,test}_step(self, dataloader_iter)` fetches its own batches (`_run_step_fetches`) through
the loop's `_data_fetcher` (a loops.fetchers._DataLoaderIterDataFetcher over the loaders as they run, each up to its
limit): no device transfer hooks; the batch hooks get the batch fetched last. With a profiler, each fetch of a batch
is timed (`[_EvaluationLoop].{val,test}_next`, `[_PredictionLoop].predict_next`).

Prediction: on_predict_model_eval, on_predict_start, on_predict_epoch_start, per batch
on_predict_batch_start / predict_step / on_predict_batch_end, on_predict_epoch_end, on_predict_end
(`predict_step(self, dataloader_iter)`: PredictionLoop._run_step_fetches, as the evaluation loop's). Each predict
DataLoader is re-created with a batch sampler that records the sample indices of each batch (for prediction writers:
current_batch_indices, epoch_batch_indices), as Lightning does.
"""
import inspect
import os
import shutil
import sys
import time
from typing import Any, Dict, Iterator, List, Optional, Tuple

import torch
from torch import Tensor

from fastlight.loops.fetchers import _DataLoaderIterDataFetcher, _dataloader_iter_fetcher
from fastlight.strategies.data import IndexRecordingBatchSampler, record_batch_indices, set_sampler_epoch
from fastlight.trainer import input_path
from fastlight.trainer.connector_views import _DataLoaderSource, _request_dataloader
from fastlight.trainer.config import parse_num_batches
from fastlight.trainer.fit_loop import _ProfiledIterator, _loader_len, _overfit_loaders, _takes_batch_idx
from fastlight.trainer.loop_views import EvaluationLoopViews
from fastlight.trainer.results import ResultCollection, to_scalars
from fastlight.utilities.apply_func import move_data_to_device
from fastlight.utilities.combined_loader import CombinedLoader
from fastlight.utilities.data import has_iterable_dataset
from fastlight.utilities.imports import _RICH_AVAILABLE
from fastlight.utilities.rank_zero import rank_zero_warn


def _metric_paths(metrics: Dict[str, Any], prefix: Tuple[str, ...] = ()) -> Iterator[Tuple[str, ...]]:
    """The key path of each value, nested dicts opened: {"a": {"b": 1}} -> ("a", "b")."""
    for key, value in metrics.items():
        if isinstance(value, dict):
            yield from _metric_paths(value, prefix + (key,))
        else:
            yield prefix + (key,)


def _value_at(metrics: Dict[str, Any], path: Tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(metrics, dict) or key not in metrics:
            return None
        metrics = metrics[key]
    return metrics


def _cell(value: Any) -> str:
    if value is None:
        return " "
    if isinstance(value, Tensor):
        value = value.item() if value.numel() == 1 else value.tolist()  # host sync: printing the final table
    return f"{value}"


def print_results(results: List[Dict[str, Any]], stage: str) -> None:
    """The table `trainer.validate/test` prints: one row per metric (nested dicts as `a:b`), one column per
    dataloader, split into several tables when the dataloaders do not fit the terminal's width; drawn with rich when
    it is installed, else as plain text (Lightning's layout, so the output reads the same)."""
    results = [{k.split("/dataloader_idx_")[0]: v for k, v in r.items()} for r in results]
    paths = {path for r in results for path in _metric_paths(r)}
    if not paths:
        return
    names_and_paths = sorted((":".join(p), p) for p in paths)
    names = [n for n, _ in names_and_paths]
    headers = [f"DataLoader {i}" for i in range(len(results))]
    cells = [[_cell(_value_at(r, p)) for r in results] for _, p in names_and_paths]
    term = shutil.get_terminal_size(fallback=(120, 30)).columns or 120
    width = int(min(max(max(map(len, names)), max(map(len, headers)), 25), term / 2))
    per_table = int((term - width) / width)  # dataloader columns beside the metric column
    title = f"{stage} metric".capitalize()
    for start in range(0, len(headers), per_table):
        columns = [title] + headers[start:start + per_table]
        rows = [[name] + row[start:start + per_table] for name, row in zip(names, cells)]
        if _RICH_AVAILABLE:
            _print_rich_table(columns, rows, width)
        else:
            _print_text_table(columns, rows, width, term)


def _print_rich_table(columns: List[str], rows: List[List[str]], width: int) -> None:
    from rich import get_console
    from rich.table import Column, Table

    table = Table(*[Column(c, justify="center", style="cyan" if i == 0 else "magenta", width=width)
                    for i, c in enumerate(columns)])
    for row in rows:
        table.add_row(*row)
    get_console().print(table)


def _print_text_table(columns: List[str], rows: List[List[str]], width: int, term: int) -> None:
    line = "".join(f"{{:^{width}}}" for _ in columns).format
    try:
        if sys.stdout.encoding is not None:  # a terminal that cannot show the box-drawing bar gets dashes
            "─".encode(sys.stdout.encoding)
        bar = "─" * term
    except UnicodeEncodeError:
        bar = "-" * term
    half = int(term / 2)
    out = [bar, line(*columns).rstrip(), bar]
    for name, *values in rows:
        # a metric name longer than half the terminal wraps: its first piece carries the values
        while len(name) > half:
            out.append(line(name[:half], *values).rstrip())
            name, values = name[half:], [" "] * len(values)
        out.append(line(name, *values).rstrip())
    out.append(bar)
    print(os.linesep.join(out))


def _combined(loaders: Any) -> CombinedLoader:
    """The stage's loader(s) as one CombinedLoader: the one the user gave (in its own mode), else "sequential" over the
    flattened list/tuple/dict (a container of plain numbers is one iterable, as in Lightning)."""
    if isinstance(loaders, CombinedLoader):
        return loaders
    return CombinedLoader(loaders, "sequential")


def _num_batches(prefix: str, loader: Any, limit: float) -> float:
    """The batches to run from `loader` under `limit_{prefix}_batches`; an IterableDataset that claims a length is
    warned about (its length may be wrong with several workers), as Lightning does."""
    length = _loader_len(loader)
    if length != float("inf") and has_iterable_dataset(loader):
        rank_zero_warn(
            "Your `IterableDataset` has `__len__` defined. In combination with multi-process data loading (when"
            " num_workers > 1), `__len__` could be inaccurate if each worker is not configured independently to"
            " avoid having duplicate data."
        )
    return parse_num_batches(prefix, length, limit)


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


def _iterate(loader: Any, batched: bool, profiler: Any, action: str) -> Any:
    """The loader's iterator (batched fetch when it qualifies: input_path.py), each next() timed when a profiler
    records."""
    iterator = input_path.iterate(loader, batched)
    return _ProfiledIterator(iterator, profiler, action) if profiler.profiling else iterator


def _start_fetcher(fetcher: _DataLoaderIterDataFetcher, combined: CombinedLoader, max_batches: List[float],
                   profiler: Any, action: str) -> None:
    """The fetcher over `combined` (its dataloaders one after the other, or in the user's parallel mode), each up to
    its limit; iter() creates the first iterator. Each fetch is timed when a profiler records."""
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


class _ModuleMode:
    """The train/eval mode of every submodule, captured before evaluation and restored after."""

    def capture(self, module: torch.nn.Module) -> None:
        self.modes = [(m, m.training) for m in module.modules()]

    def restore(self, module: torch.nn.Module) -> None:
        for m, mode in self.modes:
            m.training = mode


class EvaluationLoop(EvaluationLoopViews):  # Lightning's loop attributes: views (loop_views.py)
    """trainer.validate_loop / trainer.test_loop. `run` opens the dataloaders' iteration, fires the start hooks, calls
    `_evaluation_step` once per batch (or, for a step that takes `dataloader_iter`, `_run_step_fetches`), then
    `_on_evaluation_epoch_end` and the end hooks (`_on_run_end`).

    The dataloaders run one after the other ("sequential", each with its own `dataloader_idx`) unless the user gave
    a CombinedLoader in another mode: then each batch holds one batch of every dataloader and no `dataloader_idx` is
    passed."""

    def __init__(self, trainer: Any, fn: str) -> None:
        self.trainer = trainer
        self.fn = fn  # "validate" | "test"
        self.stage = "validation" if fn == "validate" else "test"
        self.prefix = "val" if fn == "validate" else "test"
        self.verbose = True
        self.loaders: Optional[List[Any]] = None  # the flat list of dataloaders
        self._combined: Optional[CombinedLoader] = None
        self._max_batches: List[float] = []
        self._mode = _ModuleMode()
        self._last_reload_epoch = float("-inf")
        self.results = ResultCollection(training=False)
        self._logged_outputs: List[Dict[str, Tensor]] = []
        # `{stage}_step(self, dataloader_iter)`: the fetcher the step fetches through, during a run (else None)
        self._data_fetcher: Optional[_DataLoaderIterDataFetcher] = None

    def reset_data(self) -> None:
        self.loaders = self._combined = None
        self._last_reload_epoch = float("-inf")

    @property
    def _is_sequential(self) -> bool:
        return self._combined is None or self._combined._mode == "sequential"

    @property
    def num_dataloaders(self) -> int:
        return len(self.loaders or ())

    def setup_data(self) -> None:
        trainer = self.trainer
        fitting = trainer.state.fn == "fit"
        reload_n = trainer._cfg.reload_dataloaders_every_n_epochs
        should_reload = bool(reload_n) and trainer.current_epoch - self._last_reload_epoch >= reload_n
        if self.loaders is not None and fitting and not should_reload:
            return
        limit = getattr(trainer._cfg, f"limit_{self.prefix}_batches")
        if limit == 0:
            self.loaders, self._combined, self._max_batches = [], None, []
            return
        if fitting and (not trainer.sanity_checking or trainer.fit_loop._should_check_val_epoch()):
            self._last_reload_epoch = trainer.current_epoch
        raw = _request_dataloader(_DataLoaderSource(trainer, self.prefix))
        self._combined = None if raw is None else _combined(raw)
        self.loaders = [] if raw is None else list(self._combined.flattened)
        if fitting and trainer._cfg.overfit_batches > 0 and self.loaders:  # the fit's validation draws in order
            overfit = _overfit_loaders(self.loaders, self.prefix)
            if any(a is not b for a, b in zip(overfit, self.loaders)):  # trainer.val_dataloaders shows what runs
                self._combined.flattened = self.loaders = overfit
                raw = self._combined if isinstance(raw, CombinedLoader) else self._combined.iterables
        setattr(trainer, f"{self.prefix}_dataloaders", raw)
        self._max_batches = [_num_batches(self.prefix, dl, limit) for dl in self.loaders]
        if fitting:
            trainer.num_sanity_val_batches = [min(trainer._cfg.num_sanity_val_steps, b) for b in self._max_batches]
        else:  # some users shuffle evaluation data by the training progress (Lightning sets it here outside a fit)
            for loader in self.loaders:
                set_sampler_epoch(loader, trainer.fit_loop.epoch_progress.current.processed)
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
        if sum(self.max_batches) == 0:
            return []
        self._data_fetcher = _dataloader_iter_fetcher(trainer._module, f"{self.stage}_step")
        batches = self._reset(trainer, fitting)  # the first iterator exists before the start hooks (RNG order)
        self._mode.capture(trainer.model)  # the wrapper (DDP) too, as the *_model_eval hooks switch it
        trainer._call_module(f"on_{self.stage}_model_eval")
        loaders = self.loaders
        trainer._call_callbacks(f"on_{self.stage}_start")
        trainer._call_module(f"on_{self.stage}_start")
        if self.loaders is not loaders:  # a batch-size search in the start hooks reloaded them: run the new ones
            batches = self._reset(trainer, fitting)
        trainer._call_callbacks(f"on_{self.stage}_epoch_start")
        trainer._call_module(f"on_{self.stage}_epoch_start")
        if self._data_fetcher is not None:  # the step fetches its batches
            self._run_step_fetches(self._data_fetcher)
        else:
            previous_dl_idx = 0
            for batch, batch_idx, dl_idx in batches:
                if dl_idx != previous_dl_idx:  # the next dataloader starts: keep the finished one's epoch metrics
                    self._store_dataloader_outputs()
                    previous_dl_idx = dl_idx
                self._evaluation_step(batch, batch_idx, dl_idx)
        self._store_dataloader_outputs()
        return self._on_run_end(trainer, fitting)

    def _reset(self, trainer: Any, fitting: bool) -> Optional[Iterator[Tuple[Any, int, int]]]:
        """Per-run state read by `_evaluation_step`, the dataloader_idx checks, and the batch iterator (None when the
        step fetches its batches from `dataloader_iter`: `_data_fetcher` is then started over the loaders)."""
        # Lightning's batch_progress: the fit's validation counts in its own counters (fit_loop.epoch_loop.val_loop)
        self._run_progress = trainer.loop_progress.fit.val_batch if fitting else self.batch_progress
        self._run_progress.reset_on_run()
        self._has_run = False
        self._logged_outputs = []
        module = trainer._module
        several = self._is_sequential and self.num_dataloaders > 1
        self._dl_arg = several  # the hooks get dataloader_idx only for several dataloaders run one after the other
        step_name = f"{self.stage}_step"
        self._hook_names = (f"on_{self.stage}_batch_start", step_name, f"on_{self.stage}_batch_end")
        fetcher = self._data_fetcher
        # a step that fetches from dataloader_iter takes no dataloader_idx
        _check_dataloader_idx(module, (step_name,), several and fetcher is None, self.prefix)
        _check_dataloader_idx(module, self._hook_names[::2], several, self.prefix)
        step_fn = getattr(module, step_name)
        self._pass_batch_idx = _takes_batch_idx(step_fn)
        if trainer.strategy.is_distributed:  # through the wrapper (DDP syncs buffers, FSDP gathers parameters)
            step_fn = getattr(trainer.strategy, step_name)
        if trainer.profiler.profiling:
            step_fn = trainer.profiler.wrap(f"[Strategy]{type(trainer.strategy).__name__}.{step_name}", step_fn)
        self._step_fn = step_fn
        max_batches = self.max_batches
        if fitting:
            if trainer.sanity_checking:
                trainer.num_sanity_val_batches = list(max_batches)
            for loader in self.loaders:  # some users shuffle validation data by the training epoch (as Lightning)
                set_sampler_epoch(loader, trainer.current_epoch)
        profiler, fetch_action = trainer.profiler, f"[_EvaluationLoop].{self.prefix}_next"
        if fetcher is not None:
            _start_fetcher(fetcher, self._combined, max_batches, profiler, fetch_action)
            return None
        if not self._is_sequential:
            combined = self._combined
            combined.limits = list(max_batches)
            first = iter(combined)
            if profiler.profiling:
                first = _ProfiledIterator(first, profiler, fetch_action)
            return self._combined_batches(first, combined._num_batches())
        batched = trainer._cfg.batched_input  # one index_select per tensor for TensorDataset loaders (input_path)
        first = _iterate(self.loaders[0], batched, profiler, fetch_action)
        return self._sequential_batches(first, max_batches, batched, profiler, fetch_action)

    def _sequential_batches(self, first: Iterator, max_batches: List[float], batched: bool, profiler: Any,
                            fetch_action: str) -> Iterator[Tuple[Any, int, int]]:
        """(batch, batch_idx, dataloader_idx): each dataloader up to its limit, one after the other."""
        last = len(self.loaders) - 1
        progress = self._run_progress
        for dl_idx, loader in enumerate(self.loaders):
            iterator = first if dl_idx == 0 else _iterate(loader, batched, profiler, fetch_action)
            limit = max_batches[dl_idx]
            batch_idx = 0
            while batch_idx < limit:
                try:
                    batch = next(iterator)
                except StopIteration:
                    break
                progress.is_last_batch = dl_idx == last and batch_idx + 1 >= limit
                yield batch, batch_idx, dl_idx
                batch_idx += 1

    def _combined_batches(self, combined: Iterator, length: float) -> Iterator[Tuple[Any, int, int]]:
        """(batch, batch_idx, 0) of a CombinedLoader in a parallel mode (`combined`: its iterator): one batch of each
        dataloader."""
        progress = self._run_progress
        for batch, batch_idx, dl_idx in combined:
            progress.is_last_batch = batch_idx + 1 >= length
            yield batch, batch_idx, dl_idx

    def _evaluation_step(self, batch: Any, batch_idx: int, dataloader_idx: int) -> None:
        """One batch: the transfer hooks, on_*_batch_start, the step, on_*_batch_end, and the step metrics."""
        trainer = self.trainer
        hub, results, progress = trainer._hub, self.results, self._run_progress
        module = trainer._module
        batch = trainer._batch_to_device(batch, dataloader_idx)
        dl_arg = dataloader_idx if self._dl_arg else None
        progress.increment_ready()
        hub.on_batch_start(results, batch, dl_arg)
        hook_args = (batch, batch_idx) if dl_arg is None else (batch, batch_idx, dl_arg)
        batch_start, step_name, batch_end = self._hook_names
        trainer._call_callbacks(batch_start, *hook_args)
        trainer._call_module(batch_start, *hook_args)
        progress.increment_started()
        step_args = hook_args if self._pass_batch_idx else (batch,) + hook_args[2:]
        prev = module._current_fx_name
        module.__dict__["_current_fx_name"] = step_name  # plain dict write: nn.Module.__setattr__ is slow
        with trainer._precision.forward_context():
            output = self._step_fn(*step_args)
        module.__dict__["_current_fx_name"] = prev  # plain dict write: nn.Module.__setattr__ is slow
        progress.increment_processed()
        trainer._call_callbacks(batch_end, output, *hook_args)
        trainer._call_module(batch_end, output, *hook_args)
        hub.on_batch_end(results)
        progress.increment_completed()
        if not trainer.sanity_checking:
            self._has_run = True
            seen = self._seen
            hub.update_eval_step_metrics(results, seen[dataloader_idx])
            seen[dataloader_idx] += 1

    def _run_step_fetches(self, fetcher: _DataLoaderIterDataFetcher) -> None:
        """The batches when `{validation,test}_step(self, dataloader_iter)` fetches them: one step per iteration until
        the fetcher is done or the step raises StopIteration. The batch hooks get the batch fetched last (before the
        step: the previous one, None at first); a dataloader's epoch metrics are stored when the fetches move on to
        the next dataloader (the last one's by `run`)."""
        trainer = self.trainer
        hub, results, progress = trainer._hub, self.results, self._run_progress
        module = trainer._module
        several = self._dl_arg
        batch_start, step_name, batch_end = self._hook_names
        seen = self._seen
        previous_dl_idx = 0
        while not fetcher.done:
            dataloader_iter = next(fetcher)
            if fetcher._dataloader_idx != previous_dl_idx:
                self._store_dataloader_outputs()
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
                    output = self._step_fn(dataloader_iter)
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

    def _store_dataloader_outputs(self) -> None:
        """A dataloader is exhausted: its epoch metrics are stored (Lightning does it per dataloader)."""
        hub = self.trainer._hub
        hub.epoch_end_reached()
        self._logged_outputs.append(hub.update_eval_epoch_metrics(self.results, self.trainer.sanity_checking))

    def _on_evaluation_epoch_end(self) -> None:
        """on_{validation,test}_epoch_end (callbacks, then the module); their logged values are read after."""
        trainer = self.trainer
        trainer._call_callbacks(f"on_{self.stage}_epoch_end")
        trainer._call_module(f"on_{self.stage}_epoch_end")
        trainer._hub.on_epoch_end(self.results)

    def _on_run_end(self, trainer: Any, fitting: bool) -> List[Dict[str, Any]]:
        hub, results = trainer._hub, self.results
        hub.epoch_end_reached()
        results.dataloader_idx = None
        self._on_evaluation_epoch_end()
        logged_outputs, self._logged_outputs = self._logged_outputs, []
        epoch_end_logged = hub.update_eval_epoch_metrics(results, trainer.sanity_checking)
        all_logged: Dict[str, Tensor] = {}
        for d in reversed(logged_outputs):
            all_logged.update(d)
        all_logged.update(epoch_end_logged)
        for d in logged_outputs:
            d.update(epoch_end_logged)
        hub.log_eval_end_metrics(all_logged)
        trainer._call_callbacks(f"on_{self.stage}_end")
        trainer._call_module(f"on_{self.stage}_end")
        hub.reset_results(results)
        train_hook = f"on_{self.stage}_model_train"
        if trainer._has_hook(trainer._module, train_hook):
            trainer._call_module(train_hook)
        else:
            self._mode.restore(trainer.model)
        if self.verbose and not fitting and trainer.is_global_zero:
            self._print_results(logged_outputs, self.fn)
        trainer._last_val_time = time.monotonic()
        return [to_scalars(d) for d in logged_outputs] if not fitting else logged_outputs

    _print_results = staticmethod(print_results)


class PredictionLoop(EvaluationLoopViews):  # Lightning's loop attributes: views (loop_views.py)
    fn = "predict"

    def __init__(self, trainer: Any) -> None:
        self.trainer = trainer
        self.return_predictions = True
        self._mode = _ModuleMode()
        self._predictions: List[list] = []  # dataloaders x batches
        self._num_dataloaders = 0
        # the run's dataloaders (setup_data): flattened, each one's index recorder (or None), and batch limits
        self._loaders: List[Any] = []
        self._recorders: List[Optional[IndexRecordingBatchSampler]] = []
        self._max_batches: List[float] = []
        # for prediction writers: the indices of the current batch, and dataloaders x batches x samples
        self.current_batch_indices: List[int] = []
        self.epoch_batch_indices: List[List[List[int]]] = []
        # `predict_step(self, dataloader_iter)`: the fetcher the step fetches through, during a run (else None)
        self._data_fetcher: Optional[_DataLoaderIterDataFetcher] = None

    @property
    def max_batches(self) -> List[float]:
        return self._max_batches

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

    def _flat_loaders(self, raw: Any) -> List[Any]:
        """The predict dataloaders one after the other (the only mode prediction runs in, as in Lightning)."""
        if raw is None:
            return []
        combined = _combined(raw)
        if combined._mode != "sequential":
            raise ValueError(
                f'`trainer.predict()` runs the dataloaders one after the other: it only supports'
                f' `CombinedLoader(mode="sequential")`, got mode={combined._mode!r}.'
            )
        loaders = list(combined.flattened)
        for loader in loaders:  # some users shuffle by the training progress (Lightning sets it outside a fit)
            set_sampler_epoch(loader, self.trainer.fit_loop.epoch_progress.current.processed)
        return loaders

    def _writer_intervals(self, trainer: Any) -> "tuple[bool, bool]":
        """(a writer writes per batch, a writer writes per epoch)."""
        from fastlight.callbacks.prediction_writer import BasePredictionWriter

        writers = [cb for cb in trainer.callbacks if isinstance(cb, BasePredictionWriter)]
        return any(w.interval.on_batch for w in writers), any(w.interval.on_epoch for w in writers)

    def _index_recorders(self, loaders: List[Any],
                         warn: bool) -> "tuple[List[Any], List[Optional[IndexRecordingBatchSampler]]]":
        """The loaders to iterate, each re-created to record its batch indices where it can be; `warn`: say which
        cannot."""
        out, recorders = [], []
        for dl in loaders:
            recorder = None
            if isinstance(dl, torch.utils.data.DataLoader):
                try:
                    dl = record_batch_indices(dl)
                    recorder = dl.batch_sampler
                except TypeError:
                    pass
            if recorder is None and warn:
                rank_zero_warn(f"Couldn't infer the batch indices fetched from your dataloader: `{type(dl).__name__}`")
            out.append(dl)
            recorders.append(recorder)
        return out, recorders

    def setup_data(self) -> None:
        """The run's dataloaders, requested from their source: `_loaders` (flattened, one after the other),
        `_recorders` (each one's IndexRecordingBatchSampler, or None) and `_max_batches`; trainer.predict_dataloaders
        and num_predict_batches show them. With limit_predict_batches=0 nothing is requested."""
        trainer = self.trainer
        self._loaders, self._recorders, self._max_batches = [], [], []
        limit = trainer._cfg.limit_predict_batches
        if limit == 0:
            return
        raw = _request_dataloader(_DataLoaderSource(trainer, "predict"))
        on_batch, on_epoch = self._writer_intervals(trainer)
        given = self._flat_loaders(raw)
        # every DataLoader runs re-created around a batch sampler that records each batch's sample indices (as in
        # Lightning; prediction writers read them); a writer is told when a loader cannot be re-created
        loaders, recorders = self._index_recorders(given, warn=on_batch or on_epoch)
        if any(a is not b for a, b in zip(given, loaders)):  # trainer.predict_dataloaders shows what runs
            combined = _combined(raw)
            combined.flattened = loaders
            raw = combined if isinstance(raw, CombinedLoader) else combined.iterables
        trainer.predict_dataloaders = raw
        self._loaders, self._recorders = loaders, recorders
        self._max_batches = [_num_batches("predict", dl, limit) for dl in loaders]
        trainer.num_predict_batches = list(self._max_batches)

    def _run(self, trainer: Any) -> Optional[list]:
        trainer.predicting = True
        trainer.state.stage = "predict"
        trainer._active_results = None
        self.setup_data()
        loaders, recorders, max_batches = self._loaders, self._recorders, self._max_batches
        if sum(max_batches) == 0:
            return None
        on_batch, on_epoch = self._writer_intervals(trainer)
        module = trainer._module
        n_loaders = len(loaders)
        step_fn = module.predict_step
        fetcher = self._data_fetcher = _dataloader_iter_fetcher(module, "predict_step")
        # a step that fetches from dataloader_iter takes no dataloader_idx
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
        # the first iterator is made before the start hooks, as Lightning does (RNG order)
        if fetcher is not None:
            _start_fetcher(fetcher, CombinedLoader(list(loaders), "sequential"), max_batches, profiler, fetch_action)
        else:
            iterator = _iterate(loaders[0], False, profiler, fetch_action)
        self._mode.capture(trainer.model)  # the wrapper (DDP) too, as the *_model_eval hooks switch it
        trainer._call_module("on_predict_model_eval")
        trainer._call_callbacks("on_predict_start")
        trainer._call_module("on_predict_start")
        if self._predictions is not predictions:  # a batch-size search in the start hooks ran predictions itself
            self.setup_data()  # the loaders of the size found
            loaders, recorders, max_batches = self._loaders, self._recorders, self._max_batches
            self._predictions = predictions
            if fetcher is not None:
                _start_fetcher(fetcher, CombinedLoader(list(loaders), "sequential"), max_batches, profiler,
                               fetch_action)
            else:
                iterator = _iterate(loaders[0], False, profiler, fetch_action)
            self.epoch_batch_indices = [[] for _ in loaders]
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


# Lightning's class names (lightning.pytorch.loops._EvaluationLoop / _PredictionLoop; see fastlight/loops)
_EvaluationLoop = EvaluationLoop
_PredictionLoop = PredictionLoop
