"""PyTorchProfiler: torch.profiler around the run, each Lightning action a `record_function` range.

Differs from Lightning's in one documented way: without a `schedule=` it records every step of the stage (Lightning
installs wait=1, warmup=1, active=3 over the training steps by default); pass
`schedule=torch.profiler.schedule(...)` to record a window, stepped at each *_step action as Lightning does.
"""
import inspect
import os
from functools import partial
from typing import Any, Dict, List, Optional

import torch

from fastlight.profilers.profiler import Profiler

_SORT_KEYS = {"cpu_time", "cuda_time", "cpu_time_total", "cuda_time_total", "cpu_memory_usage", "cuda_memory_usage",
              "self_cpu_memory_usage", "self_cuda_memory_usage", "count"}
_STEP_FUNCTIONS = ("training_step", "validation_step", "test_step", "predict_step")


class PyTorchProfiler(Profiler):
    def __init__(self, dirpath: Optional[str] = None, filename: Optional[str] = None,
                 group_by_input_shapes: bool = False, emit_nvtx: bool = False, export_to_chrome: bool = True,
                 row_limit: int = 20, sort_by_key: Optional[str] = None, record_module_names: bool = True,
                 table_kwargs: Optional[Dict[str, Any]] = None, **profiler_kwargs: Any) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        cuda = torch.cuda.is_available()
        activities = profiler_kwargs.get("activities")
        if activities is not None:
            cuda = torch.profiler.ProfilerActivity.CUDA in activities
        self._sort_by_key = sort_by_key or ("cuda_time_total" if cuda else "cpu_time_total")
        if self._sort_by_key not in _SORT_KEYS:
            raise ValueError(f"Found sort_by_key: {self._sort_by_key}. Should be within {sorted(_SORT_KEYS)}.")
        self._table_kwargs = dict(table_kwargs or {})
        valid = set(inspect.signature(torch.autograd.profiler_util.EventList.table).parameters) - {"self"}
        for key in self._table_kwargs:
            if key in ("sort_by", "row_limit"):
                raise KeyError(f"Found invalid table_kwargs key: {key}. This is already a positional argument of the"
                               " Profiler.")
            if key not in valid:
                raise KeyError(f"Found invalid table_kwargs key: {key}. Should be within {sorted(valid)}.")
        schedule = profiler_kwargs.get("schedule")
        if schedule is not None and not callable(schedule):
            raise ValueError(f"Schedule should be a callable. Found: {schedule}")
        self._group_by_input_shapes = group_by_input_shapes and profiler_kwargs.get("record_shapes", False)
        self._emit_nvtx = emit_nvtx
        self._export_to_chrome = export_to_chrome
        self._row_limit = row_limit
        self._record_module_names = record_module_names
        self._profiler_kwargs = profiler_kwargs
        if "activities" not in profiler_kwargs and not emit_nvtx:
            acts = [torch.profiler.ProfilerActivity.CPU] + ([torch.profiler.ProfilerActivity.CUDA] if cuda else [])
            self._profiler_kwargs = dict(profiler_kwargs, activities=acts)
        self._lightning_module: Optional[torch.nn.Module] = None  # set by the Trainer for record_module_names
        self.profiler: Any = None
        self._contexts: List[Any] = []  # what start() entered, exited in reverse at the stage's end
        self._records: Dict[str, Any] = {}
        self._hooks: List[Any] = []
        self.function_events: Any = None

    # -- recording ------------------------------------------------------------------------------------
    def _begin(self) -> None:
        if self._emit_nvtx:
            self._contexts = [torch.cuda.profiler.profile(), torch.autograd.profiler.emit_nvtx()]
            for ctx in self._contexts:
                ctx.__enter__()
            self.profiler = self._contexts[-1]
        else:
            self.profiler = torch.profiler.profile(**self._profiler_kwargs)
            self.profiler.__enter__()
            self._contexts = [self.profiler]
        if self._record_module_names and self._lightning_module is not None:
            for name, module in self._lightning_module.named_modules():
                if name:
                    label = f"[pl][module]{type(module).__module__}.{type(module).__name__}: {name}"
                    self._hooks.append(module.register_forward_pre_hook(partial(self._enter_module, label=label)))
                    self._hooks.append(module.register_forward_hook(partial(self._exit_module, label=label)))

    def _enter_module(self, module: Any, args: Any, label: str) -> None:
        record = torch.profiler.record_function(label)
        record.__enter__()
        self._records[label] = record

    def _exit_module(self, module: Any, args: Any, output: Any, label: str) -> None:
        record = self._records.pop(label, None)
        if record is not None:
            record.__exit__(None, None, None)

    def start(self, action_name: str) -> None:
        if self.profiler is None:
            self._begin()
        if action_name not in self._records:
            record = torch.profiler.record_function("[pl][profile]" + action_name)
            record.__enter__()
            self._records[action_name] = record

    def stop(self, action_name: str) -> None:
        record = self._records.pop(action_name, None)
        if record is None:
            raise ValueError(f"Attempting to stop recording an action ({action_name}) which was never started.")
        record.__exit__(None, None, None)
        if ("schedule" in self._profiler_kwargs and not self._emit_nvtx and self.profiler is not None
                and action_name.endswith(_STEP_FUNCTIONS)):
            self.profiler.step()

    def _end(self) -> None:
        for record in reversed(list(self._records.values())):
            record.__exit__(None, None, None)
        self._records = {}
        for handle in self._hooks:
            handle.remove()
        self._hooks = []
        for ctx in reversed(self._contexts):
            ctx.__exit__(None, None, None)
        if self.profiler is not None and not self._emit_nvtx:
            self.function_events = self.profiler.events()
        self._contexts, self.profiler = [], None

    # -- report ---------------------------------------------------------------------------------------
    def summary(self) -> str:
        if self.profiler is None or self._emit_nvtx:
            self._end()
            return ""
        prof = self.profiler
        self._end()
        if self._export_to_chrome and self.dirpath is not None:
            os.makedirs(self.dirpath, exist_ok=True)
            prof.export_chrome_trace(self._report_path(extension=".pt.trace.json"))
        if not self.function_events:
            return ""
        table = self.function_events.key_averages(group_by_input_shapes=self._group_by_input_shapes).table(
            sort_by=self._sort_by_key, row_limit=self._row_limit, **self._table_kwargs)
        header = (f"{self._stage.upper()} " if self._stage else "") + "Profiler Report"
        rank = f" rank: {self._local_rank}" if self._local_rank is not None else ""
        return f"{header}\nProfile stats for: records{rank}\n{table}"

    def teardown(self, stage: Optional[str]) -> None:
        if self.profiler is not None:
            self._end()
