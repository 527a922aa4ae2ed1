"""Optimizer step time: fastlight's fused AdamW / SGD against torch's for-loop, foreach and fused=True.

Parameter sets: ResNet-18's (62 tensors, 11.7M), GPT-2 small's (148 tensors, 124M; --quick: 2 layers and a
16K vocabulary, 28M), 10,000 tensors of 64 elements (host and launch overhead), one flat tensor of 100M
(--quick: 10M). Every candidate steps the same params and grads with its own state; candidates run
interleaved (round-robin, order rotating each round) and each reports the median step time. Memory-bound
numbers: GB/s at 28 bytes/param for AdamW (read p, g, m, v; write p, m, v) and 20 for SGD with momentum
(read p, g, buf; write p, buf), against the bandwidth of an in-place read-modify-write stream timed in the
same rounds (harness.BandwidthProbe; a plain copy is reported too, in the JSON).

    python -m fastlight.benchmarks.bench_optim [--quick] [--device cpu|cuda] [--only adamw|sgd] [--sets a,b]

`run(quick, device)` returns rows with name, candidate, median_ms, ratio (this candidate's time / torch
fused=True time, the harness's convention: below 1 is faster), speedup (its inverse: above 1 is faster than
torch's fused step), gbps, pct_of_bw and a few descriptive keys.
"""
import argparse
import statistics
import time
from typing import Callable, Dict, List, Tuple

import torch

from .harness import GBPS, MS, PCT_BW, RATIO, BandwidthProbe, bandwidth_fields, cache_bytes, format_table

BYTES_PER_PARAM = {"adamw": 28, "sgd": 20}
RESIDENT_BYTES_PER_PARAM = {"adamw": 16, "sgd": 12}  # the tensors a step touches: p, g, m, v / p, g, buf


# ---- parameter sets ------------------------------------------------------------------------------------------


def resnet18_shapes() -> List[Tuple[int, ...]]:
    shapes = [(64, 3, 7, 7), (64,), (64,)]
    in_ch = 64
    for out_ch, first_stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
        for block in range(2):
            c_in = in_ch if block == 0 else out_ch
            shapes += [(out_ch, c_in, 3, 3), (out_ch,), (out_ch,), (out_ch, out_ch, 3, 3), (out_ch,), (out_ch,)]
            if block == 0 and (first_stride != 1 or c_in != out_ch):
                shapes += [(out_ch, c_in, 1, 1), (out_ch,), (out_ch,)]
        in_ch = out_ch
    return shapes + [(1000, 512), (1000,)]


def gpt2_shapes(n_layer: int = 12, vocab: int = 50257, d: int = 768, ctx: int = 1024) -> List[Tuple[int, ...]]:
    shapes = [(vocab, d), (ctx, d)]
    for _ in range(n_layer):
        shapes += [(d,), (d,), (d, 3 * d), (3 * d,), (d, d), (d,), (d,), (d,), (d, 4 * d), (4 * d,), (4 * d, d), (d,)]
    return shapes + [(d,), (d,)]


def param_sets(quick: bool) -> Dict[str, List[Tuple[int, ...]]]:
    return {
        "resnet18": resnet18_shapes(),
        **({} if quick else {"gpt2_small": gpt2_shapes()}),
        "10k_x_64" if not quick else "2k_x_64": [(64,)] * (10_000 if not quick else 2_000),
        "flat_100M" if not quick else "flat_10M": [(100_000_000,)] if not quick else [(10_000_000,)],
    }


# ---- timing --------------------------------------------------------------------------------------------------


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _time_once(fn: Callable[[], None], device: str) -> float:
    _sync(device)
    t0 = time.perf_counter()
    fn()
    _sync(device)
    return time.perf_counter() - t0


def _make_optimizers(kind: str, params: List[torch.Tensor]) -> Dict[str, torch.optim.Optimizer]:
    from fastlight.optim import FusedAdamW, FusedSGD

    if kind == "adamw":
        kw = dict(lr=1e-6, weight_decay=0.01)
        return {
            "torch_forloop": torch.optim.AdamW(params, foreach=False, **kw),
            "torch_foreach": torch.optim.AdamW(params, foreach=True, **kw),
            "torch_fused": torch.optim.AdamW(params, fused=True, **kw),
            "fastlight": FusedAdamW(params, **kw),
        }
    kw = dict(lr=1e-6, momentum=0.9)
    return {
        "torch_forloop": torch.optim.SGD(params, foreach=False, **kw),
        "torch_foreach": torch.optim.SGD(params, foreach=True, **kw),
        "torch_fused": torch.optim.SGD(params, fused=True, **kw),
        "fastlight": FusedSGD(params, **kw),
    }


def bench_set(kind: str, set_name: str, shapes, device: str, repeats: int, probe: BandwidthProbe) -> List[dict]:
    params = [torch.randn(s, device=device).requires_grad_() for s in shapes]
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    n_params = sum(p.numel() for p in params)
    opts = _make_optimizers(kind, params)
    names = list(opts)
    warmup = 1 if len(params) > 1000 else 2
    for name in names:  # state creation and first-touch out of the timings
        for _ in range(warmup):
            opts[name].step()
    runners = {name: opt.step for name, opt in opts.items()}
    runners.update(bw_rmw=probe.rmw, bw_copy=probe.copy)
    cache = cache_bytes(device)
    order0 = list(runners)
    times: Dict[str, List[float]] = {n: [] for n in order0}
    for r in range(repeats):
        order = order0[r % len(order0):] + order0[: r % len(order0)]
        for name in order:
            times[name].append(_time_once(runners[name], device))
    medians = {n: statistics.median(t) for n, t in times.items()}
    for n in ("bw_rmw", "bw_copy"):  # references: the fastest round (other jobs only slow a stream down)
        medians[n] = min(times[n])
    rmw_gbps = probe.gbps("rmw", medians["bw_rmw"] * 1e3)
    copy_gbps = probe.gbps("copy", medians["bw_copy"] * 1e3)
    rows = []
    for name in names:
        ms = medians[name] * 1e3
        nbytes = BYTES_PER_PARAM[kind] * n_params
        bw = bandwidth_fields(nbytes, ms, rmw_gbps, working_set=RESIDENT_BYTES_PER_PARAM[kind] * n_params,
                              cache=cache)
        rows.append({
            "name": f"{kind}/{set_name}",
            "candidate": name,
            "median_ms": round(ms, 3),
            "ratio": round(medians[name] / medians["torch_fused"], 3),
            "speedup": round(medians["torch_fused"] / medians[name], 3),
            "gbps": round(bw["gbps"], 2),
            "pct_of_bw": round(bw["pct_of_bw"], 1),
            **({"bw_flag": bw["bw_flag"]} if "bw_flag" in bw else {}),
            "bw_gbps": round(rmw_gbps, 2),
            "copy_gbps": round(copy_gbps, 2),
            "n_tensors": len(params),
            "n_params": n_params,
            "repeats": repeats,
            "device": device,
            "threads": torch.get_num_threads(),
        })
    del opts, params
    return rows


def _repeats(set_name: str, quick: bool) -> int:
    # The for-loop over 10,000 tensors takes a good fraction of a second per step: fewer rounds there.
    if set_name in ("10k_x_64", "2k_x_64"):
        return 3 if quick else 5
    if set_name.startswith(("flat_100M", "gpt2_small")):
        return 7
    return 5 if quick else 15


def run(quick: bool = True, device: str = "cpu", kinds=("adamw", "sgd"), sets=None) -> List[dict]:
    """Benchmark rows (see the module docstring). quick: smaller sets and fewer rounds (under a minute)."""
    torch.manual_seed(0)
    probe = BandwidthProbe(device, mib=64 if quick else 256)
    rows = []
    for kind in kinds:
        for set_name, shapes in param_sets(quick).items():
            if sets and set_name not in sets:
                continue
            rows += bench_set(kind, set_name, shapes, device, _repeats(set_name, quick), probe)
    from fastlight import ops

    for row in rows:
        row["isa"] = ops.cpu_optim_isa() if device == "cpu" else device
    return rows


COLUMNS = (MS, RATIO, GBPS, PCT_BW)
NOTES = (
    "x base: time / torch's fused=True step's time for the same set (below 1: faster).",
    "GB/s: 28 bytes per parameter for AdamW (read p, g, m, v; write p, m, v) and 20 for SGD with momentum "
    "(read p, g, buf; write p, buf), per second. % bw: that rate as a share of an in-place read+write stream "
    "(x.mul_(1.0)) on a buffer far above the last-level cache, its fastest of the same rounds (the JSON has its "
    "GB/s, bw_gbps, and a plain copy's, copy_gbps). Above 100 without c: other jobs slowed even the "
    "reference's fastest round (a loaded shared machine); rerun quiet before quoting it.",
)


def format_rows(rows: List[dict]) -> str:
    return format_table(rows, COLUMNS, NOTES)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small sets, few rounds (under a minute on CPU)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--only", choices=["adamw", "sgd"], default=None)
    ap.add_argument("--sets", default=None, help="comma-separated set names")
    args = ap.parse_args(argv)
    kinds = (args.only,) if args.only else ("adamw", "sgd")
    rows = run(args.quick, args.device, kinds=kinds, sets=args.sets.split(",") if args.sets else None)
    print(format_rows(rows))


if __name__ == "__main__":
    main()
