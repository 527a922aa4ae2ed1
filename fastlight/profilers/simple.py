"""SimpleProfiler: wall time per action (mean, calls, total, share of the stage), as Lightning's."""
import math
import os
import time
from collections import defaultdict
from typing import Dict, List, Optional

from fastlight.profilers.profiler import Profiler


class SimpleProfiler(Profiler):
    def __init__(self, dirpath: Optional[str] = None, filename: Optional[str] = None, extended: bool = True) -> None:
        super().__init__(dirpath=dirpath, filename=filename)
        self.extended = extended
        self.current_actions: Dict[str, float] = {}
        self.recorded_durations: Dict[str, List[float]] = defaultdict(list)
        self.start_time = time.perf_counter()

    def start(self, action_name: str) -> None:
        if action_name in self.current_actions:
            raise ValueError(f"Attempted to start {action_name} which has already started.")
        self.current_actions[action_name] = time.perf_counter()

    def stop(self, action_name: str) -> None:
        end = time.perf_counter()
        begin = self.current_actions.pop(action_name, None)
        if begin is None:
            raise ValueError(f"Attempting to stop recording an action ({action_name}) which was never started.")
        self.recorded_durations[action_name].append(end - begin)

    def summary(self) -> str:
        title = (f"{self._stage.upper()} " if self._stage else "") + "Profiler Report"
        if not self.recorded_durations:
            return ""
        total_time = time.perf_counter() - self.start_time
        rows = []
        for action, durations in self.recorded_durations.items():
            total = math.fsum(durations)
            rows.append((action, total / len(durations), len(durations), total, 100.0 * total / total_time))
        if self.extended:
            rows.sort(key=lambda r: r[3], reverse=True)
            header = ("Action", "Mean duration (s)", "Num calls", "Total time (s)", "Percentage %")
            body = [("Total", "-", str(sum(r[2] for r in rows)), f"{total_time:.5}", "100 %")]
            body += [(a, f"{m:.5}", str(n), f"{t:.5}", f"{p:.5}") for a, m, n, t, p in rows]
        else:
            rows.sort(key=lambda r: r[1], reverse=True)
            header = ("Action", "Mean duration (s)", "Total time (s)")
            body = [(a, f"{m:.5}", f"{t:.5}") for a, m, _, t, _ in rows]
        widths = [max(len(str(r[i])) for r in [header] + body) for i in range(len(header))]

        def line(cells) -> str:
            return "|  " + "  |  ".join(str(c).ljust(w) for c, w in zip(cells, widths)) + "  |"

        rule = "-" * len(line(header))
        out = [title, rule, line(header), rule]
        if self.extended:
            out += [line(body[0]), rule] + [line(r) for r in body[1:]]
        else:
            out += [line(r) for r in body]
        out.append(rule)
        return os.linesep.join(out) + os.linesep

