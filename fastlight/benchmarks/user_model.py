"""`python -m fastlight.benchmarks --model pkg.module:LitModel`: the user's own LightningModule trained by fastlight,
by pytorch_lightning (when installed) and by a raw PyTorch loop, side by side in one process, and where a step's
time goes.

Method: every candidate trains from a fresh module over the same DataLoader; per step = (t(long run) - t(short
run)) / (long - short), so set-up and first-step costs drop out; candidates alternate in rounds (order rotating)
and the median over rounds is reported. The split of a step (data, forward+backward, optimizer) is measured in
the raw loop with a timer at each phase boundary (on CUDA a synchronize there; the totals above are timed
without them) and scaled to the raw loop's untimed step; a framework's overhead is its step minus the raw loop's.
"""
import inspect
import json
import os
import tempfile
import textwrap
from typing import Any, Callable, Dict, List, Optional

import torch
from torch.utils.data import DataLoader, RandomSampler

from . import compare
from .harness import WIDTH, format_table, per_step_seconds, quiet
from .loading import LoadError, framework_of, load_class, load_for_framework

AUTO_STEPS = (6, 3000)  # bounds of the long run's steps when --steps is not given
PHASES = (("data", "data"), ("forward_backward", "fwd+bwd"), ("optimizer", "optim"))

COLUMNS = (
    ("median_ms", "ms/step", "{:.4g}"),
    ("samples_per_s", "samples/s", "{:.4g}"),
    ("ratio", "x raw", "{:.3f}"),
    ("pct_data", "data %", "{:.0f}"),
    ("pct_forward_backward", "fwd+bwd %", "{:.0f}"),
    ("pct_optimizer", "optim %", "{:.0f}"),
    ("pct_framework", "framework %", "{:.0f}"),
)


def _json_arg(text: Optional[str], option: str) -> Dict[str, Any]:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise LoadError(f"{option}: not valid JSON ({e}): {text!r}") from None
    if not isinstance(value, dict):
        raise LoadError(f"{option}: expected a JSON object of keyword arguments, got {type(value).__name__}")
    return value


def _with_batch_size(cls: type, kwargs: Dict[str, Any], batch_size: Optional[int]) -> Dict[str, Any]:
    """Pass --batch-size to the constructor when it takes a batch_size argument and it was not given."""
    if batch_size is None or "batch_size" in kwargs:
        return kwargs
    try:
        params = inspect.signature(cls.__init__).parameters
    except (TypeError, ValueError):
        return kwargs
    return dict(kwargs, batch_size=batch_size) if "batch_size" in params else kwargs


def _construct(cls: type, kwargs: Dict[str, Any], option: str, spec: str):
    try:
        return cls(**kwargs)
    except Exception as e:
        args = f" with {kwargs}" if kwargs else " without arguments"
        raise LoadError(f"{option} {spec!r}: constructing {cls.__name__}{args} failed: {type(e).__name__}: {e} "
                        f"(constructor arguments go in {option}-args as JSON)") from None


def _rebatch(loader, batch_size: int) -> DataLoader:
    """The same data with another batch size: a new DataLoader over the loader's dataset and settings."""
    if not isinstance(loader, DataLoader) or loader.batch_size is None:
        raise LoadError(f"--batch-size {batch_size}: the training data is not a DataLoader with a batch_size (it "
                        f"uses a batch_sampler or is a {type(loader).__name__}); set the batch size in your code")
    return DataLoader(loader.dataset, batch_size=batch_size, shuffle=isinstance(loader.sampler, RandomSampler),
                      num_workers=loader.num_workers, collate_fn=loader.collate_fn, pin_memory=loader.pin_memory,
                      drop_last=loader.drop_last, persistent_workers=loader.persistent_workers)


def _samples_in(batch) -> int:
    leaves = torch.utils._pytree.tree_leaves(batch)
    for leaf in leaves:
        if isinstance(leaf, torch.Tensor) and leaf.dim() > 0:
            return int(leaf.shape[0])
    raise LoadError("the training batches hold no tensor with a batch dimension, so samples/s is undefined")


def training_data(module, datamodule, model_spec: str, dm_spec: Optional[str]):
    """The DataLoader to train on: the datamodule's train_dataloader, else the module's."""
    owner, spec, option = (datamodule, dm_spec, "--datamodule") if datamodule is not None else \
        (module, model_spec, "--model")
    name = type(owner).__name__
    if datamodule is None:
        base = next((b for b in type(module).__mro__ if b.__name__ == "LightningModule"), None)
        if base is not None and getattr(type(module), "train_dataloader", None) is getattr(base, "train_dataloader", 1):
            raise LoadError(f"--model {model_spec!r}: {name} has no data: it defines no train_dataloader(); give "
                            f"--datamodule MODULE:CLASS (and --datamodule-args JSON for its constructor)")
    for hook in ("prepare_data", "setup"):
        try:
            getattr(owner, hook)(*(("fit",) if hook == "setup" else ()))
        except Exception as e:
            raise LoadError(f"{option} {spec!r}: {name}.{hook}() failed: {type(e).__name__}: {e}") from None
    try:
        loader = owner.train_dataloader()
    except Exception as e:
        raise LoadError(f"{option} {spec!r}: {name}.train_dataloader() failed: {type(e).__name__}: {e}") from None
    if loader is None or not hasattr(loader, "__iter__"):
        raise LoadError(f"{option} {spec!r}: {name}.train_dataloader() returned {type(loader).__name__}, not a "
                        f"DataLoader")
    return loader


def _short(e: BaseException) -> str:
    text = f"{type(e).__name__}: {e}".strip().splitlines()[0] if str(e) else type(e).__name__
    return text if len(text) <= 240 else text[:237] + "..."


def resolve_device(device: Optional[str]) -> str:
    if device in (None, "auto"):
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device not in ("cpu", "cuda"):  # the Trainers take an accelerator and a device count, not a device index
        raise LoadError(f"--device {device}: expected cpu, cuda or auto (pick a GPU with CUDA_VISIBLE_DEVICES)")
    if device == "cuda" and not torch.cuda.is_available():
        raise LoadError(f"--device {device}: no CUDA device is available to torch here")
    return device


def run(model: str, datamodule: Optional[str] = None, model_args: Optional[str] = None,
        datamodule_args: Optional[str] = None, batch_size: Optional[int] = None, precision: str = "32-true",
        steps: Optional[int] = None, rounds: int = 3, device: Optional[str] = None, lightning: bool = True,
        log: Callable[[str], None] = print) -> dict:
    """Measure; returns the result dict (what --json writes). Raises LoadError for bad input."""
    try:
        compare.check_precision(precision)
    except ValueError as e:
        raise LoadError(str(e)) from None
    if steps is not None and steps < 3:
        raise LoadError(f"--steps {steps}: at least 3 (the short run is a third of the long one)")
    if rounds < 1:
        raise LoadError(f"--rounds {rounds}: at least 1")
    if batch_size is not None and batch_size < 1:
        raise LoadError(f"--batch-size {batch_size}: must be positive")
    device = resolve_device(device)
    m_kwargs = _json_arg(model_args, "--model-args")
    d_kwargs = _json_arg(datamodule_args, "--datamodule-args")

    user_cls = load_class(model, "--model", "LightningModule")
    fl_cls = load_for_framework(user_cls, "fastlight")
    m_kwargs = _with_batch_size(fl_cls, m_kwargs, batch_size)
    dm = None
    if datamodule:
        dm_cls = load_class(datamodule, "--datamodule", "LightningDataModule")
        d_kwargs = _with_batch_size(dm_cls, d_kwargs, batch_size)
        dm = _construct(dm_cls, d_kwargs, "--datamodule", datamodule)
    torch.manual_seed(0)
    probe_module = _construct(fl_cls, m_kwargs, "--model", model)
    with quiet():
        loader = training_data(probe_module, dm, model, datamodule)
    if batch_size is not None and getattr(loader, "batch_size", batch_size) != batch_size:
        loader = _rebatch(loader, batch_size)
    try:
        first = next(iter(loader))
    except StopIteration:
        raise LoadError(f"the training DataLoader of {'--datamodule' if dm else '--model'} yields no batches") from None
    samples = _samples_in(first)
    del probe_module, first

    def fl_factory():
        return fl_cls(**m_kwargs)

    import fastlight

    candidates: Dict[str, Callable[[int], None]] = {}
    reasons: Dict[str, str] = {}
    root = tempfile.mkdtemp(prefix="fastlight_bench_")
    candidates["raw loop"] = lambda s: compare.raw_run(fl_factory, loader, device, precision, s)
    candidates["fastlight"] = lambda s: compare.framework_run(fastlight, fl_factory, loader, device, precision, s, root)
    if not lightning:
        reasons["pytorch_lightning"] = "n/a: left out (--no-lightning)"
    else:
        try:
            import pytorch_lightning

            pl_cls = load_for_framework(user_cls, "pytorch_lightning")
            candidates["pytorch_lightning"] = lambda s: compare.framework_run(
                pytorch_lightning, lambda: pl_cls(**m_kwargs), loader, device, precision, s, root)
        except ImportError:
            reasons["pytorch_lightning"] = "n/a: pytorch_lightning is not installed"
        except LoadError as e:
            reasons["pytorch_lightning"] = f"n/a: {e}"

    if steps is None:  # enough steps that the timed difference lasts about a second per candidate
        steps = AUTO_STEPS[0]
        try:
            with quiet():
                est = sum(compare.raw_split(fl_factory, loader, device, precision, 8, skip=3).values())
            steps = int(min(AUTO_STEPS[1], max(AUTO_STEPS[0], 1.5 / max(est, 1e-6))))
        except Exception:
            pass  # the raw loop cannot run this module: its row will say why
    long, short = steps, max(1, steps // 3)
    log(textwrap.fill(f"model {user_cls.__name__} ({model}), device {device}, precision {precision}, {samples} "
                      f"samples per batch; per step = (t({long}) - t({short})) / {long - short}, median of {rounds} "
                      f"interleaved round(s)", WIDTH, subsequent_indent="  "))
    for name in list(candidates):  # a trial run each (also the warm-up); a failure becomes the row's reason
        try:
            with quiet():
                candidates[name](short)
        except Exception as e:
            reasons[name] = f"n/a: failed: {_short(e)}"
            del candidates[name]
    per_step = per_step_seconds(candidates, long, short, rounds, floor=1e-9, warm=False) if candidates else {}

    split = scaled = None
    kernel: Dict[str, float] = {}
    if "raw loop" in per_step:
        with quiet():
            split = compare.raw_split(fl_factory, loader, device, precision, long, skip=short)
        total = sum(split.values())
        scaled = {k: v * per_step["raw loop"] / total for k, v in split.items()} if total > 0 else None
        if device.startswith("cuda"):
            for name in ("raw loop", "fastlight"):
                if name in candidates:
                    try:
                        with quiet():
                            kernel[name] = compare.kernel_ms_per_step(candidates[name], long, short)
                    except Exception as e:  # no CUPTI: the column is informative only
                        log(f"GPU kernel time of {name} not measured: {_short(e)}")

    rows: List[dict] = []
    raw = per_step.get("raw loop")
    for name in ("raw loop", "fastlight", "pytorch_lightning"):
        if name not in per_step:
            if name in reasons:
                rows.append(dict(candidate=name, note=reasons[name]))
            continue
        sec = per_step[name]
        row = dict(candidate=name, median_ms=sec * 1e3, samples_per_s=samples / sec,
                   ratio=sec / raw if raw else None)
        if scaled:
            for key, _ in PHASES:
                row[f"pct_{key}"] = 100.0 * scaled[key] / sec
            row["pct_framework"] = 100.0 * (sec - raw) / sec
        if name in kernel:
            row["gpu_kernel_ms"] = kernel[name]
        rows.append(row)
    case = (f"{user_cls.__name__} ({model}), {device}, precision {precision}, batch {samples}, "
            f"{long - short} steps timed per round, {rounds} round(s)")
    for row in rows:
        row["name"] = case
    return dict(
        settings=dict(model=model, datamodule=datamodule, model_args=m_kwargs, datamodule_args=d_kwargs,
                      batch_size=samples, precision=precision, device=device, long_steps=long, short_steps=short,
                      rounds=rounds, user_framework=framework_of(user_cls)),
        rows=rows,
        split_ms=None if split is None else dict(
            timed={k: v * 1e3 for k, v in split.items()},
            scaled_to_raw_step={k: v * 1e3 for k, v in scaled.items()} if scaled else None),
        gpu_kernel_ms=kernel or None,
    )


def _ms(v: float) -> str:
    return f"{v:.3g}" if abs(v) < 1000 else f"{v:.0f}"


def notes(result: dict) -> List[str]:
    s = result["settings"]
    out = [
        f"ms/step: (t({s['long_steps']} steps) - t({s['short_steps']} steps)) / {s['long_steps'] - s['short_steps']}, "
        f"median of {s['rounds']} interleaved round(s): set-up and first-step costs drop out. samples/s: batch "
        f"size / that. x raw: / the raw loop's step (below 1: faster).",
        "raw loop: the module's training_step (self.log a no-op), backward, the optimizer (and LR scheduler) from "
        "configure_optimizers, zero_grad; fastlight and pytorch_lightning: Trainer.fit with logger, progress bar, "
        "checkpointing, model summary and validation off.",
        "data %, fwd+bwd %, optim %: the share of this candidate's step spent fetching the batch and moving it to "
        "the device, in training_step + backward, and in the optimizer step + zero_grad, measured in the raw loop "
        "with a timer at each boundary" + (" (a CUDA synchronize there)" if s["device"].startswith("cuda") else "")
        + " and scaled to the raw loop's untimed step.",
        "framework %: (this candidate's step - the raw loop's) / this candidate's step: what the Trainer adds per "
        "step (negative: faster than the raw loop, e.g. through fastlight's fused optimizer). The four add to 100.",
    ]
    split = result.get("split_ms")
    if split:
        timed = ", ".join(f"{label} {_ms(split['timed'][k])}" for k, label in PHASES)
        out.append(f"raw loop phases with timers, ms per step: {timed} (sum {_ms(sum(split['timed'].values()))}).")
    if result.get("gpu_kernel_ms"):
        kern = ", ".join(f"{k} {_ms(v)} ms" for k, v in result["gpu_kernel_ms"].items())
        out.append(f"GPU kernel time per step (torch.profiler, (K(long) - K(short)) / extra steps): {kern}: the "
                   f"step's bound if the host kept the GPU busy.")
    return out


def table(result: dict) -> str:
    return format_table(result["rows"], COLUMNS, notes(result))


def write_png(result: dict, path: str) -> None:
    """Two panels: samples/s per candidate, and each candidate's ms per step split into phases."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise LoadError(f"--png {path}: matplotlib is not installed (pip install matplotlib)") from None
    rows = [r for r in result["rows"] if r.get("median_ms") is not None]
    names = [r["candidate"] for r in rows]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 3.6))
    ax1.barh(names, [r["samples_per_s"] for r in rows], color="#4c72b0")
    ax1.set_xlabel("samples/s (higher is better)")
    ax1.invert_yaxis()
    left = [0.0] * len(rows)
    colors = {"data": "#8172b2", "forward_backward": "#55a868", "optimizer": "#c44e52", "framework": "#dd8452"}
    labels = dict(PHASES, framework="framework")
    for key in ("data", "forward_backward", "optimizer", "framework"):
        vals = [max(0.0, r.get(f"pct_{key}", 0.0) or 0.0) * r["median_ms"] / 100.0 for r in rows]
        if any(vals):
            ax2.barh(names, vals, left=left, color=colors[key], label=labels[key])
            left = [a + b for a, b in zip(left, vals)]
    if not any(r.get("pct_data") is not None for r in rows):
        ax2.barh(names, [r["median_ms"] for r in rows], color="#999999", label="step")
    for i, r in enumerate(rows):  # the step's own length (below the raw split when faster than the raw loop)
        ax2.plot([r["median_ms"]], [i], marker="|", color="black", markersize=22)
    ax2.set_xlabel("ms per step (lower is better); | = the candidate's step")
    ax2.invert_yaxis()
    ax2.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.22), ncol=4)
    s = result["settings"]
    model = s["model"] if "/" not in s["model"] else os.path.basename(s["model"])
    fig.suptitle(f"{model}: {s['device']}, {s['precision']}, batch {s['batch_size']}", fontsize=10)
    fig.tight_layout()
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
