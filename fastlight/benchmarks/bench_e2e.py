"""End to end: the CIFAR-10 example's model (torchvision ResNet-18 with the 3x3 stem, 10 classes, Adam 1e-3) on
CIFAR-shaped synthetic data (nothing downloaded), at batch 16 (the example's) and 128, candidates interleaved:

- pytorch_lightning: its Trainer, everything but the loop off;
- pytorch_lightning + torch.compile(model): what a user would pick instead; compile time is in "set-up s";
- raw loop: training_step, backward, Adam, zero_grad (compare.raw_run);
- fastlight: its Trainer (eager, the defaults: fused optimizer);
- fastlight cuda_graphs: `Trainer(cuda_graphs=True)`, whole-step CUDA graphs (n/a where this fastlight's Trainer
  has no such flag, and on the CPU).

CUDA: bf16-mixed and 16-mixed, plus the GPU-kernel-time bound per step from torch.profiler. CPU: 32-true (the
example's default) and, without --quick, bf16-mixed (16-mixed runs as bf16-mixed on the CPU in both frameworks);
--quick on the CPU runs batch 16 only and leaves out torch.compile (minutes of compiling).

Per step = (time of a run of N steps - time of a run of M steps) / (N - M), so the fixed cost of a fit (Trainer
set-up, hooks, first steps' allocations, compiling) cancels out; that fixed cost is reported on its own.

    python -m fastlight.benchmarks --only e2e [--quick] [--device cuda]
"""
import inspect
import tempfile
import time
from typing import Callable, Dict, List, Optional

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from . import compare
from .harness import Skip, per_step_seconds, quiet

COMPILE_KWARGS: dict = {}  # torch.compile(model, **COMPILE_KWARGS): the defaults, as a user would call it
CIFAR_TRAIN = 50_000
EPOCHS = 5
COLUMNS = (
    ("median_ms", "ms/step", "{:.4g}"),
    ("samples_per_s", "samples/s", "{:.4g}"),
    ("speedup", "x PL", "{:.2f}"),
    ("gpu_kernel_ms", "kernel ms", "{:.3g}"),
    ("x_bound", "x bound", "{:.2f}"),
    ("setup_s", "set-up s", "{:.3g}"),
    ("run_s", f"{EPOCHS} epochs s", "{:.4g}"),
)
NOTES = (
    "ms/step: (t(long run) - t(short run)) / extra steps, median of interleaved rounds (fixed costs drop out); "
    "samples/s: batch / that. x PL: pytorch_lightning's step time / this one's (above 1: faster than Lightning).",
    "kernel ms: GPU kernel + memcpy time per step from torch.profiler (long minus short run), the step's bound if "
    "the host kept the GPU busy; x bound: ms/step / kernel ms (1.00 = GPU-bound). The cuda_graphs row replays "
    "fastlight's eager kernels, so its bound is fastlight's.",
    "set-up s: the candidate's first run minus its steps at the measured rate: Trainer set-up, first-call costs "
    f"and, for torch.compile, compiling. {EPOCHS} epochs s: set-up + {EPOCHS} CIFAR-10 epochs "
    f"({CIFAR_TRAIN} samples each) at ms/step: what a user waits for.",
)


def _model() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # as examples/cifar10.py
    model.maxpool = nn.Identity()
    return model


def _loader(steps: int, batch: int, device: str) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (steps * batch,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False, pin_memory=device == "cuda")


def _module_class(pl):
    class LitResnet(pl.LightningModule):
        def __init__(self, model: Optional[nn.Module] = None):
            super().__init__()
            self.model = model if model is not None else _model()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return LitResnet


def _compiled_factory(pl) -> Callable[[], nn.Module]:
    """Fresh-from-the-same-start modules around ONE compiled network: every run restores the initial weights
    into it, so the code compiled in the first run is reused (a new network per run would recompile)."""
    torch._dynamo.reset()
    torch.manual_seed(0)
    net = _model()
    initial = {k: v.clone() for k, v in net.state_dict().items()}
    compiled = torch.compile(net, **COMPILE_KWARGS)
    cls = _module_class(pl)

    def factory():
        net.load_state_dict(initial)
        return cls(compiled)

    return factory


def cuda_graphs_available() -> bool:
    import fastlight

    return "cuda_graphs" in inspect.signature(fastlight.Trainer.__init__).parameters


def _settings(quick: bool, device: str):
    if device == "cuda":
        long, short, repeats = (30, 10, 3) if quick else (60, 15, 5)
        return [16, 128], ["bf16-mixed", "16-mixed"], long, short, repeats
    if quick:  # a smoke run: ResNet-18 steps take a good part of a second on 2 cores
        return [16], ["32-true"], 2, 1, 2
    return [16, 128], ["32-true", "bf16-mixed"], 8, 2, 3


ORDER = ("pytorch_lightning", "pytorch_lightning + compile", "raw loop", "fastlight", "fastlight cuda_graphs")


def _candidates(fl, lpl, loader, device: str, precision: str, quick: bool, root: str):
    """(runners by candidate, n/a reasons by candidate) for one case."""
    fl_cls = _module_class(fl)
    cands: Dict[str, Callable[[int], None]] = {}
    na: Dict[str, str] = {}
    if lpl is not None:
        pl_cls = _module_class(lpl)
        cands["pytorch_lightning"] = lambda s: compare.framework_run(lpl, pl_cls, loader, device, precision, s, root)
        if device == "cpu" and quick:
            na["pytorch_lightning + compile"] = "n/a: left out of --quick on the CPU (compiling takes minutes)"
        else:
            compiled = _compiled_factory(lpl)
            cands["pytorch_lightning + compile"] = lambda s: compare.framework_run(
                lpl, compiled, loader, device, precision, s, root)
    else:
        na["pytorch_lightning"] = na["pytorch_lightning + compile"] = "n/a: pytorch_lightning is not installed"
    cands["raw loop"] = lambda s: compare.raw_run(fl_cls, loader, device, precision, s)
    cands["fastlight"] = lambda s: compare.framework_run(fl, fl_cls, loader, device, precision, s, root)
    if device != "cuda":
        na["fastlight cuda_graphs"] = "n/a: CUDA graphs need a CUDA device"
    elif not cuda_graphs_available():
        na["fastlight cuda_graphs"] = "n/a: not available (this fastlight's Trainer has no cuda_graphs flag)"
    else:
        cands["fastlight cuda_graphs"] = lambda s: compare.framework_run(
            fl, fl_cls, loader, device, precision, s, root, cuda_graphs=True)
    return cands, na


def _reason(e: Exception) -> str:
    first = str(e).splitlines()[0] if str(e) else ""
    return f"{type(e).__name__}: {first}"[:200]


def _case_rows(name: str, batch: int, cands, na, device: str, long: int, short: int, repeats: int) -> List[dict]:
    first: Dict[str, float] = {}
    with quiet():
        for cand in list(cands):  # the first run of each: set-up, first-call costs, compiling
            t0 = time.perf_counter()
            try:
                cands[cand](short)
            except Exception as e:  # e.g. no C++ compiler for inductor: the row says so
                na[cand] = f"n/a: failed: {_reason(e)}"
                del cands[cand]
                continue
            first[cand] = time.perf_counter() - t0
    per_step = per_step_seconds(cands, long, short, repeats, floor=1e-9, warm=False)
    kernel: Dict[str, float] = {}
    if device == "cuda":
        for cand in ("raw loop", "fastlight"):
            if cand in cands:
                try:
                    with quiet():
                        kernel[cand] = compare.kernel_ms_per_step(cands[cand], long, short)
                except Exception as e:  # no CUPTI: the column is informative only
                    na.setdefault(f"kernel time ({cand})", f"n/a: profiler failed: {_reason(e)}")
        if "fastlight" in kernel:  # the graph replays fastlight's eager kernels
            kernel["fastlight cuda_graphs"] = kernel["fastlight"]
    base = per_step.get("pytorch_lightning")
    rows = []
    for cand in list(ORDER) + [k for k in na if k not in ORDER]:
        if cand in per_step:
            sec = per_step[cand]
            setup = max(0.0, first[cand] - short * sec)
            row = dict(name=name, candidate=cand, median_ms=sec * 1e3, samples_per_s=batch / sec,
                       ratio=(sec / base) if base else None, speedup=(base / sec) if base else None,
                       setup_s=setup, run_s=setup + EPOCHS * (CIFAR_TRAIN // batch) * sec)
            if cand in kernel:
                row.update(gpu_kernel_ms=kernel[cand], x_bound=sec * 1e3 / kernel[cand])
            rows.append(row)
        elif cand in na:
            rows.append(dict(name=name, candidate=cand, note=na[cand]))
    return rows


def run(quick: bool, device: str) -> List[dict]:
    """Rows: name, candidate, median_ms (per step), samples_per_s, ratio (time over pytorch_lightning's: below 1
    is faster), speedup (its inverse), setup_s, run_s, gpu_kernel_ms / x_bound (CUDA), note (n/a rows)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        raise Skip("torchvision is not installed (the model is its ResNet-18)") from None
    import fastlight as fl

    try:
        import pytorch_lightning as lpl
    except ImportError:
        lpl = None
    batches, precisions, long, short, repeats = _settings(quick, device)
    if device == "cuda":
        torch.ones(1, device=device).sum().item()  # CUDA context outside every candidate's first run
    rows: List[dict] = []
    with tempfile.TemporaryDirectory() as root:
        for batch in batches:
            loader = _loader(long, batch, device)
            for precision in precisions:
                cands, na = _candidates(fl, lpl, loader, device, precision, quick, root)
                name = f"ResNet-18 CIFAR batch {batch}, {precision}, Adam, {device}"
                rows += _case_rows(name, batch, cands, na, device, long, short, repeats)
        if device == "cpu" and quick:
            rows.append(dict(name="ResNet-18 CIFAR batch 128, cpu", candidate="all",
                             note="n/a: left out of --quick on the CPU (seconds per step); run without --quick"))
    return rows


if __name__ == "__main__":
    import sys

    from .harness import format_table

    dev = "cuda" if "--device" in sys.argv and "cuda" in sys.argv else "cpu"
    print(format_table(run("--quick" in sys.argv, dev), COLUMNS, NOTES))
