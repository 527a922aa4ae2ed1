"""Command line of `python -m fastlight.benchmarks` (and of the repository's `python -m benchmarks`).

Built-in suite:  python -m fastlight.benchmarks [--quick] [--device cpu|cuda] [--only NAME]... [--json FILE]
Your own model:  python -m fastlight.benchmarks --model pkg.module:LitModel [--datamodule pkg.module:DM]
                     [--model-args JSON] [--datamodule-args JSON] [--batch-size N] [--precision P]
                     [--steps N] [--rounds N] [--device D] [--json FILE] [--png FILE]
                 (a file path works in place of a module: path/to/file.py:LitModel)
"""
import argparse
import datetime
import importlib
import json
import os
import pkgutil
import platform
import subprocess
import sys
import textwrap
import traceback
from typing import List, Optional

import torch

from .harness import WIDTH, Skip, format_table

HERE = os.path.dirname(os.path.abspath(__file__))


def available() -> List[str]:
    return sorted(m.name[len("bench_"):] for m in pkgutil.iter_modules([HERE]) if m.name.startswith("bench_"))


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE,
                              timeout=10).stdout.strip() or "unknown"
    except Exception:
        return "unknown"


def metadata(device: str, quick: Optional[bool] = None) -> dict:
    import fastlight
    import fastlight.ops as ops

    meta = dict(
        date=datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        commit=commit(),
        fastlight=getattr(fastlight, "__version__", "unknown"),
        machine=f"{platform.machine()} {os.cpu_count()} cpus"
        + (f", {torch.cuda.get_device_name()}" if device.startswith("cuda") else ""),
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        device=device,
        backend=ops.backend(device.split(":")[0]),
    )
    if quick is not None:
        meta["quick"] = quick
    return meta


def meta_line(meta: dict) -> str:
    return textwrap.fill(" ".join(f"{k}={v}" for k, v in meta.items()), WIDTH, subsequent_indent="  ")


def _parser(prog: str) -> argparse.ArgumentParser:
    names = available()
    p = argparse.ArgumentParser(prog=prog, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default=None, metavar="D",
                   help="cpu or cuda (suite default: cpu; with --model: cuda when available, else cpu)")
    p.add_argument("--json", metavar="FILE", help="also write the rows and the run's metadata to FILE")
    s = p.add_argument_group("built-in suite")
    s.add_argument("--quick", action="store_true", help="small sizes, few repeats (a few minutes on 2 cores)")
    s.add_argument("--only", action="append", metavar="NAME",
                   help=f"run only this benchmark (repeatable); one of: {', '.join(names)}")
    m = p.add_argument_group("your own LightningModule")
    m.add_argument("--model", metavar="MODULE:CLASS", help="pkg.module:LitModel or path/to/file.py:LitModel")
    m.add_argument("--datamodule", metavar="MODULE:CLASS", help="its LightningDataModule (default: the module's "
                   "own train_dataloader)")
    m.add_argument("--model-args", metavar="JSON", help='constructor keyword arguments, e.g. \'{"lr": 0.001}\'')
    m.add_argument("--datamodule-args", metavar="JSON", help="the datamodule's constructor keyword arguments")
    m.add_argument("--batch-size", type=int, metavar="N", help="passed to the constructors that take batch_size; otherwise the "
                   "DataLoader is rebuilt with it")
    m.add_argument("--precision", default="32-true", metavar="P", help="Trainer precision (default 32-true)")
    m.add_argument("--steps", type=int, default=None, metavar="N", help="steps of the long run; the short one has a third "
                   "(default: enough for about a second of timed steps, 6 to 3000)")
    m.add_argument("--rounds", type=int, default=3, metavar="N", help="interleaved rounds; medians are reported (default 3)")
    m.add_argument("--no-lightning", action="store_true", help="leave pytorch_lightning out")
    m.add_argument("--png", metavar="FILE", help="write a chart (needs matplotlib)")
    return p


def _write_json(path: str, payload: dict) -> None:
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    with open(path, "w") as f:
        json.dump(payload, f, indent=1, default=str)


def run_model(args, p: argparse.ArgumentParser) -> int:
    from . import user_model
    from .loading import LoadError

    if args.quick or args.only:
        p.error("--quick and --only select built-in benchmarks; with --model use --steps and --rounds")
    try:
        device = user_model.resolve_device(args.device)
        print(meta_line(metadata(device)), flush=True)
        result = user_model.run(args.model, args.datamodule, args.model_args, args.datamodule_args,
                                args.batch_size, args.precision, args.steps, args.rounds, device,
                                lightning=not args.no_lightning)
        print()
        print(user_model.table(result), flush=True)
        result["meta"] = metadata(device)
        if args.json:
            _write_json(args.json, result)
            print(f"\nwrote {args.json}")
        if args.png:
            user_model.write_png(result, args.png)
            print(f"wrote {args.png}")
    except LoadError as e:
        print(f"{p.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0


def run_suite(args, p: argparse.ArgumentParser) -> int:
    names = available()
    device = args.device or "cpu"
    if device not in ("cpu", "cuda"):
        p.error(f"--device {device}: the built-in suite runs on cpu or cuda")
    if device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available to torch here")
    for opt in ("datamodule", "model_args", "datamodule_args", "batch_size", "png"):
        if getattr(args, opt) is not None:
            p.error(f"--{opt.replace('_', '-')} needs --model")
    selected = args.only or names
    unknown = [n for n in selected if n not in names]
    if unknown:
        p.error(f"--only: unknown benchmark(s) {', '.join(unknown)}; available: {', '.join(names)}")

    meta = metadata(device, args.quick)
    print(meta_line(meta), flush=True)
    all_rows, failed, skipped = [], [], {}
    for name in selected:
        mod = importlib.import_module(f"{__package__}.bench_{name}")
        print(f"\n== {name}", flush=True)
        try:
            rows = mod.run(quick=args.quick, device=device)
        except Skip as e:
            print(f"skipped: {e}", flush=True)
            skipped[name] = str(e)
            continue
        except Exception:
            traceback.print_exc()
            failed.append(name)
            continue
        for r in rows:
            r.setdefault("bench", name)
        columns = getattr(mod, "COLUMNS", None)
        kwargs = {} if columns is None else dict(columns=columns)
        print(format_table(rows, notes=getattr(mod, "NOTES", ()), **kwargs), flush=True)
        all_rows += rows
    if args.json:
        _write_json(args.json, dict(meta=meta, rows=all_rows, failed=failed, skipped=skipped))
    if failed:
        print(f"\nfailed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


def main(argv: Optional[List[str]] = None, prog: str = "python -m fastlight.benchmarks") -> int:
    p = _parser(prog)
    args = p.parse_args(argv)
    return run_model(args, p) if args.model else run_suite(args, p)
