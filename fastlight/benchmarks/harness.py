"""Timing helpers shared by the benchmarks: interleaved repeats, medians, ratios, bandwidth references, tables.

These machines are shared and noisy, so candidates are always compared side by side in one process:
each repeat runs every candidate once (in rotating order), and the median over repeats is reported.
"""
import contextlib
import gc
import io
import logging
import os
import statistics
import textwrap
import time
import warnings
from typing import Callable, Dict, Iterable, List, Optional, Sequence, Tuple

import torch

WIDTH = 100  # every table fits this many columns


class Skip(Exception):
    """Raised by a benchmark's run() when it cannot run here; the message says why (printed, not a failure)."""


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
    fastest: Sequence[str] = (),
) -> Dict[str, float]:
    """Median milliseconds per call of each candidate, measured in interleaved rounds (for the names in
    `fastest`, e.g. a bandwidth reference, the fastest round instead: interference only slows a stream down).

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
    return {n: (min(v) if n in fastest else statistics.median(v)) for n, v in samples.items()}


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
    warm: bool = True,
) -> Dict[str, float]:
    """Seconds per step of whole runs: median over interleaved rounds of (t(long) - t(short)) / (long - short).

    `candidates[name](steps)` runs `steps` steps from scratch; the difference cancels set-up costs. One
    warm-up run of `short` steps each first (imports, first-call costs, autotuning) unless `warm` is False.
    `floor` clamps each sample from below (noise can make the difference negative).
    """
    names = list(candidates)
    samples: Dict[str, List[float]] = {n: [] for n in names}
    with quiet():
        if warm:
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


def cache_bytes(device: str) -> Optional[int]:
    """Size of the last-level cache data may sit in (CPU: the largest cache of cpu0 in sysfs; CUDA: L2)."""
    if device.startswith("cuda"):
        return int(getattr(torch.cuda.get_device_properties(torch.cuda.current_device()), "L2_cache_size", 0)) or None
    best = None
    base = "/sys/devices/system/cpu/cpu0/cache"
    try:
        for entry in os.listdir(base):
            try:
                with open(os.path.join(base, entry, "size")) as f:
                    text = f.read().strip()
            except OSError:
                continue
            mult = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:].upper(), 1)
            value = int(text.rstrip("KMGkmg")) * mult
            best = value if best is None else max(best, value)
    except (OSError, ValueError):
        return None
    return best


class BandwidthProbe:
    """Memory bandwidth measured as a candidate in the same interleaved rounds as the work it is compared with
    (a shared machine's bandwidth drifts from minute to minute), on a buffer far above the last-level cache,
    with the access pattern of that work; its fastest round is the reference (other jobs only slow it down):

    - "read":  a read-only pass (`x.sum()`), for read-only passes such as grad_stats.
    - "rmw":   an in-place `x.mul_(1.0)`, read + write of every element: the optimizers' pattern (each state
               is read, then written back).
    - "copy":  `dst.copy_(src)`, read + write; it also pays a hidden read of dst (write-allocate) that the
               byte count leaves out, so it reports less than the traffic really moved: given for reference.
    """

    def __init__(self, device: str, mib: int = 256):
        llc = cache_bytes(device) or 0
        nbytes = max(mib << 20, 8 * llc)
        n = nbytes // 4
        self.src = torch.ones(n, device=device)
        self.dst = torch.ones_like(self.src)
        self.nbytes = n * 4
        for fn in (self.read, self.rmw, self.copy):  # first touch out of the timings
            fn()

    def bytes_moved(self, pattern: str) -> int:
        return self.nbytes * (1 if pattern == "read" else 2)

    def read(self) -> None:
        self.src.sum()

    def rmw(self) -> None:
        self.dst.mul_(1.0)

    def copy(self) -> None:
        self.dst.copy_(self.src)

    def gbps(self, pattern: str, ms: float) -> float:
        return self.bytes_moved(pattern) / (ms * 1e-3) / 1e9


def copy_bandwidth_gbps(device: str = "cpu", nbytes: int = 256 << 20, repeats: int = 5) -> float:
    """Measured memory bandwidth of this machine now: a large tensor copy, read + write bytes per second."""
    n = nbytes // 4
    src = torch.ones(n, dtype=torch.float32, device=device)
    dst = torch.empty_like(src)
    ms = interleaved({"copy": lambda: dst.copy_(src)}, device=device, repeats=repeats, warmup=1)["copy"]
    return 2 * nbytes / (ms * 1e-3) / 1e9


def bandwidth_fields(bytes_moved: float, ms: float, ref_gbps: Optional[float], working_set: float,
                     cache: Optional[int]) -> dict:
    """gbps, pct_of_bw and a cache flag for one measurement. A `working_set` (bytes) up to twice the last-level
    cache is served from it in good part when the work repeats, so a percentage of the memory bandwidth is no
    bound there: flagged (bw_flag "c") and explained under the table."""
    gbps = bytes_moved / (ms * 1e-3) / 1e9
    out = dict(gbps=gbps)
    if ref_gbps:
        out["pct_of_bw"] = 100.0 * gbps / ref_gbps
    if cache and working_set <= 2 * cache:
        out["bw_flag"] = "c"
    return out


def rows_for_case(
    name: str,
    medians: Dict[str, float],
    baseline: str,
    bytes_moved: Optional[Dict[str, float]] = None,
    bandwidth_gbps: Optional[float] = None,
    working_set: Optional[float] = None,
    cache: Optional[int] = None,
    **extra,
) -> List[dict]:
    """Rows of one case: ratio against `baseline`; GB/s where bytes moved per call are given."""
    rows = []
    for cand, ms in medians.items():
        row = dict(name=name, candidate=cand, median_ms=ms, ratio=ms / medians[baseline], **extra)
        if bytes_moved and cand in bytes_moved:
            row.update(bandwidth_fields(bytes_moved[cand], ms, bandwidth_gbps,
                                        working_set if working_set is not None else bytes_moved[cand], cache))
        rows.append(row)
    return rows


# ---- tables ------------------------------------------------------------------------------------------------------

# (row key, header, format) of the columns most benchmarks share
MS = ("median_ms", "ms", "{:.4g}")
RATIO = ("ratio", "x base", "{:.3f}")
GBPS = ("gbps", "GB/s", "{:.3g}")
PCT_BW = ("pct_of_bw", "% bw", "{:.0f}")

COLUMN_NOTES = {
    "median_ms": "ms: median time of one call over interleaved rounds (candidates alternate, order rotating).",
    "ratio": "x base: this candidate's time / the case's baseline's time (below 1: faster than the baseline).",
    "gbps": "GB/s: the bytes the work must move (nominal count, see the benchmark's note) per second.",
}


def _fmt(value, spec: str) -> str:
    if value is None or value == "":
        return ""
    if isinstance(value, float) and value != value:
        return "n/a"
    if isinstance(value, float) and abs(value) >= 1e4 and "g" in spec:
        return f"{value:.0f}"  # no exponents in tables
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return spec.format(value)
    return str(value)


def _pct_cell(row: dict, spec: str) -> str:
    cell = _fmt(row.get("pct_of_bw"), spec)
    return cell + ("c" if cell and row.get("bw_flag") == "c" else "")


def format_table(rows: List[dict], columns: Sequence[Tuple[str, str, str]] = (MS, RATIO, GBPS, PCT_BW),
                 notes: Iterable[str] = (), width: int = WIDTH) -> str:
    """Rows grouped by case (`name`): a case line, then one line per candidate with `columns`; a row's `note`
    (e.g. why it was skipped) is printed in place of its numbers. Candidate names wrap so that every line fits
    `width` columns. Under the table: what each column and percentage means (`notes` plus the shared ones)."""
    empty = [c for c in columns if all(r.get(c[0]) in (None, "") for r in rows)]
    columns = [c for c in columns if c not in empty]
    notes = [n for n in notes if not any(n.startswith(h + ":") for _, h, _ in empty)]  # about absent columns
    headers = [h for _, h, _ in columns]

    def cells(r):
        return [_pct_cell(r, spec) if key == "pct_of_bw" else _fmt(r.get(key), spec) for key, _, spec in columns]

    body = [cells(r) for r in rows]
    num_w = [max([len(h)] + [len(b[i]) for b in body]) for i, h in enumerate(headers)]
    numbers_width = sum(w + 2 for w in num_w)
    cand_w = max([len("candidate")] + [len(str(r.get("candidate", ""))) for r in rows])
    cand_w = max(16, min(cand_w, width - numbers_width))
    lines: List[str] = []
    head = "candidate".ljust(cand_w) + "".join("  " + h.rjust(w) for h, w in zip(headers, num_w))
    rule = "-" * min(width, len(head))
    last_case = object()
    for r, b in zip(rows, body):
        case = r.get("name")
        if case != last_case:
            if lines:
                lines.append("")
            lines += textwrap.wrap(f"case: {case}", width) or ["case:"]
            lines += [head, rule]
            last_case = case
        name_lines = textwrap.wrap(str(r.get("candidate", "")), cand_w) or [""]
        if r.get("note") and not any(b):
            note_lines = textwrap.wrap(str(r["note"]), width - cand_w - 2)
            for i in range(max(len(name_lines), len(note_lines))):
                left = name_lines[i] if i < len(name_lines) else ""
                right = note_lines[i] if i < len(note_lines) else ""
                lines.append((left.ljust(cand_w) + "  " + right).rstrip())
            continue
        lines.append((name_lines[0].ljust(cand_w) + "".join("  " + c.rjust(w) for c, w in zip(b, num_w))).rstrip())
        lines += name_lines[1:]
        if r.get("note"):
            lines += textwrap.wrap(str(r["note"]), width, initial_indent="  ", subsequent_indent="  ")
    shared = [c for c in (MS, RATIO, GBPS) if c in columns]  # the shared columns keep the shared meaning
    explain = [COLUMN_NOTES[k] for k, h, _ in shared if not any(n.startswith(h + ":") for n in notes)]
    explain += notes
    if any(r.get("bw_flag") == "c" for r in rows):
        explain.append("c after % bw: the data the work touches is at most twice the last-level cache, so repeated "
                       "calls find much of it there and the percentage may exceed 100: no memory-bound figure.")
    if explain:
        lines.append("")
        for text in explain:
            lines += textwrap.wrap(text, width, subsequent_indent="  ")
    return "\n".join(lines)
