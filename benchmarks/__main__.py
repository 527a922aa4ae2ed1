"""CLI: run every benchmarks/bench_*.py (or --only some) and print one table each; optional JSON."""
import argparse
import datetime
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import traceback

import torch

from .harness import format_table

HERE = os.path.dirname(os.path.abspath(__file__))


def available():
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([HERE]) if m.name.startswith("bench_"))


def commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              timeout=10).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def main(argv=None):
    names = available()
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small sizes, few repeats (about a minute in all)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--only", action="append", metavar="NAME",
                   help=f"run only this benchmark (repeatable); one of: {', '.join(names)}")
    p.add_argument("--json", metavar="FILE", help="also write all rows and the run's metadata to FILE")
    args = p.parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available to torch here")
    selected = args.only or names
    unknown = [n for n in selected if n not in names]
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")

    import fastlight.ops as ops

    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=commit(),
        machine=f"{platform.machine()} {os.cpu_count()} cpus"
        + (f", {torch.cuda.get_device_name()}" if args.device == "cuda" else ""),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        device=args.device,
        quick=args.quick,
        backend=ops.backend(args.device),
    )
    print(" ".join(f"{k}={v}" for k, v in meta.items()), flush=True)
    all_rows, failed = [], []
    for name in selected:
        mod = importlib.import_module(f"benchmarks.bench_{name}")
        print(f"\n== {name}", flush=True)
        try:
            rows = mod.run(quick=args.quick, device=args.device)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for r in rows:
            r.setdefault("bench", name)
        print(format_table(rows), flush=True)
        all_rows += rows
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(meta=meta, rows=all_rows, failed=failed), f, indent=1)
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
