"""AdvancedProfiler: one cProfile per action, reported with pstats (Lightning's AdvancedProfiler)."""
import cProfile
import io
import os
import pstats
from typing import Dict, List, Optional

from fastlight.profilers.profiler import Profiler


class AdvancedProfiler(Profiler):
    def __init__(self, dirpath: Optional[str] = None, filename: Optional[str] = None,
                 line_count_restriction: float = 1.0, dump_stats: bool = False) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.line_count_restriction = line_count_restriction
        self.dump_stats = dump_stats
        self.profiled_actions: Dict[str, cProfile.Profile] = {}
        self._active: List[str] = []

    def start(self, action_name: str) -> None:
        # Only one cProfile can be active at a time (Python 3.12 refuses a second): a nested action pauses the
        # enclosing one, so each action's report holds the calls made outside its nested actions.
        if self._active:
            self.profiled_actions[self._active[-1]].disable()
        prof = self.profiled_actions.get(action_name)
        if prof is None:
            prof = self.profiled_actions[action_name] = cProfile.Profile()
        self._active.append(action_name)
        prof.enable()

    def stop(self, action_name: str) -> None:
        if not self._active or self._active[-1] != action_name:
            raise ValueError(f"Attempting to stop recording an action ({action_name}) which was never started.")
        self.profiled_actions[self._active.pop()].disable()
        if self._active:
            self.profiled_actions[self._active[-1]].enable()

    def summary(self) -> str:
        if not self.profiled_actions:
            return ""
        parts = [(f"{self._stage.upper()} " if self._stage else "") + "Profiler Report"]
        for action, prof in self.profiled_actions.items():
            if self.dump_stats:
                path = self._report_path(action_name=action, extension=".prof")
                os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
                prof.dump_stats(path)
            buf = io.StringIO()
            pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative").print_stats(
                self.line_count_restriction)
            header = f"Profile stats for: {action}"
            if self._local_rank is not None:
                header += f" rank: {self._local_rank}"
            parts += [header, buf.getvalue()]
        return os.linesep.join(parts)

    def teardown(self, stage: Optional[str]) -> None:
        for name in reversed(self._active):
            self.profiled_actions[name].disable()
        self._active = []
        self.profiled_actions = {}
