"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios, measured bandwidth.

These machines are shared and noisy, so candidates are always compared side by side in one process:
each repeat runs every candidate once (in rotating order), and the median over repeats is reported.
"""
import contextlib
import gc
import io
import logging
import statistics
import time
import warnings
from typing import Callable, Dict, List, Optional

import torch


def synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_once(fn: Callable[[], object], device: str, inner: int) -> float:
    if device.startswith("cuda"):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(inner):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / inner
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) * 1e3 / inner


def interleaved(
    candidates: Dict[str, Callable[[], object]],
    device: str = "cpu",
    repeats: int = 7,
    warmup: int = 2,
    inner: int = 1,
    min_time_ms: Optional[float] = None,
) -> Dict[str, float]:
    """Median milliseconds per call of each candidate, measured in interleaved rounds.

    `inner` calls are timed together per round (raise it for sub-millisecond work); with `min_time_ms`
    inner is chosen so one timed block of the slowest candidate lasts about that long.
    """
    names = list(candidates)
    for _ in range(warmup):
        for n in names:
            candidates[n]()
    synchronize(device)
    if min_time_ms is not None:
        slowest = max(_time_once(candidates[n], device, 1) for n in names)
        inner = max(1, int(min_time_ms / max(slowest, 1e-3)))
    samples: Dict[str, List[float]] = {n: [] for n in names}
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one candidate's block would bias it
    try:
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                samples[n].append(_time_once(candidates[n], device, inner))
    finally:
        if gc_was_enabled:
            gc.enable()
    return {n: statistics.median(v) for n, v in samples.items()}


@contextlib.contextmanager
def quiet():
    """Silence what whole training runs print (bars, summaries, warnings, logging) while they are timed."""
    sink = io.StringIO()
    with warnings.catch_warnings(), contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink):
        warnings.simplefilter("ignore")
        logging.disable(logging.WARNING)
        try:
            yield
        finally:
            logging.disable(logging.NOTSET)


def per_step_seconds(
    candidates: Dict[str, Callable[[int], None]],
    long: int,
    short: int,
    repeats: int,
    clock: Callable[[], float] = time.perf_counter,
    floor: Optional[float] = None,
) -> Dict[str, float]:
    """Seconds per step of whole runs: median over interleaved rounds of (t(long) - t(short)) / (long - short).

    `candidates[name](steps)` runs `steps` steps from scratch; the difference cancels set-up costs. One
    warm-up run of `short` steps each first (imports, first-call costs, autotuning). `floor` clamps each
    sample from below (noise can make the difference negative).
    """
    names = list(candidates)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    with quiet():
        for n in names:
            candidates[n](short)
        for r in range(repeats):
            order = names[r % len(names):] + names[: r % len(names)]
            for n in order:
                t0 = clock()
                candidates[n](long)
                t1 = clock()
                candidates[n](short)
                t2 = clock()
                diff = (t1 - t0) - (t2 - t1)
                samples[n].append((diff if floor is None else max(diff, floor)) / (long - short))
    return {n: statistics.median(v) for n, v in samples.items()}


def copy_bandwidth_gbps(device: str = "cpu", nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Measured memory bandwidth of this machine now: a large tensor copy, read + write bytes per second."""
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = interleaved({"copy": lambda: dst.copy_(src)}, device=device, repeats=repeats, warmup=1)["copy"]
    return 2 * nbytes / (ms * 1e-3) / 1e9


def rows_for_case(
    name: str,
    medians: Dict[str, float],
    baseline: str,
    bytes_moved: Optional[Dict[str, float]] = None,
    bandwidth_gbps: Optional[float] = None,
    **extra,
) -> List[dict]:
    """Rows of one case: ratio against `baseline`; GB/s where bytes moved per call are given."""
    rows = []
    for cand, ms in medians.items():
        row = dict(name=name, candidate=cand, median_ms=ms, ratio=ms / medians[baseline], **extra)
        if bytes_moved and cand in bytes_moved:
            gbps = bytes_moved[cand] / (ms * 1e-3) / 1e9
            row["gbps"] = gbps
            if bandwidth_gbps:
                row["pct_of_bw"] = 100.0 * gbps / bandwidth_gbps
        rows.append(row)
    return rows


def format_table(rows: List[dict]) -> str:
    cols = [("name", "case"), ("candidate", "candidate"), ("median_ms", "median ms"), ("ratio", "time x baseline"),
            ("gbps", "GB/s"), ("pct_of_bw", "% of bw")]
    extra_cols = sorted({k for r in rows for k in r} - {c for c, _ in cols} - {"bench"})
    header = [h for _, h in cols] + extra_cols

    def fmt(v):
        if v is None:
            return ""
        if isinstance(v, float):
            return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.0f}"
        return str(v)

    table = [header] + [[fmt(r.get(c)) for c, _ in cols] + [fmt(r.get(c)) for c in extra_cols] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(header))]
    lines = ["  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in table]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
