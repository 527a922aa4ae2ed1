"""Loop overhead: a tiny MLP (64-64-10, batch 32, SGD, 1 CPU thread) trained by a raw PyTorch loop, by fastlight
and by pytorch_lightning (defaults: logger, progress bar, checkpointing; and everything off), interleaved in one
process. Also the import cost of fastlight and pytorch_lightning relative to torch alone.

Per-step time = (time of a fit of N steps - time of a fit of M steps) / (N - M): the fixed start-up cost of a
fit (Trainer set-up, hooks, logger creation) cancels out. Each candidate iterates the same in-memory DataLoader.
Time is the CPU time of the calling thread (`time.thread_time`; torch runs on that one thread here): on a shared,
loaded machine wall time mostly measures the neighbours, thread CPU time measures the work.

    python -m fastlight.benchmarks --only overhead [--quick]
"""
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable, Dict, List

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

from .harness import MS, RATIO, Skip, per_step_seconds

# the directory fastlight is imported from (a checkout or site-packages): the import timing uses the same one
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLUMNS = (MS, RATIO)
NOTES = (
    "ms: train step: (t(long fit) - t(short fit)) / extra steps in thread CPU time, median of interleaved rounds "
    "(fixed costs of a fit drop out); import: a fresh process importing the module (torch included), median of "
    "rounds.",
    "x base: train step: / the raw loop's (below 1: faster); the last line is fastlight's defaults / Lightning's "
    "defaults. import: / import torch's.",
)


def _mlp() -> nn.Module:
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10))


def _loader(steps: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * 32, 64, generator=g)
    y = torch.randint(0, 10, (steps * 32,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=32, shuffle=True)


def _raw_loop(steps: int) -> None:
    model = _mlp()
    opt = torch.optim.SGD(model.parameters(), lr=0.01)
    for x, y in _loader(steps):
        opt.zero_grad()
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        opt.step()


def _module_class(pl):
    class Tiny(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = _mlp()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.net(x), y)
            self.log("train_loss", loss, prog_bar=True)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    return Tiny


def _framework_fit(pl, steps: int, defaults: bool, root: str, **extra) -> None:
    kw = dict(max_epochs=1, accelerator="cpu", devices=1, default_root_dir=root, **extra)
    if not defaults:
        kw.update(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)
    trainer = pl.Trainer(**kw)
    trainer.fit(_module_class(pl)(), train_dataloaders=_loader(steps))


def _import_ms(module: str, repeats: int) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print((time.perf_counter() - t) * 1e3)"
    times = []
    for _ in range(repeats):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                             env=dict(os.environ, PYTHONPATH=ROOT)).stdout.strip().splitlines()
        times.append(float(out[-1]))
    return statistics.median(times)


def run(quick: bool, device: str) -> List[dict]:
    """Rows: name, candidate, median_ms, ratio (to the raw loop; for imports, to `import torch`)."""
    if device != "cpu":
        raise Skip("the loop-overhead benchmark is defined on 1 CPU thread: CPU only")
    import fastlight as fl

    try:
        import pytorch_lightning as lpl
    except ImportError:
        lpl = None
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    rows: List[dict] = []
    try:
        long, short, repeats = (250, 50, 3) if quick else (2000, 200, 7)
        with tempfile.TemporaryDirectory() as root:
            cands: Dict[str, Callable[[int], None]] = {
                "raw PyTorch loop": _raw_loop,
                # defaults include fused=True, which swaps in FusedSGD: the same loop, one kernel call for the step
                "fastlight, defaults": lambda s: _framework_fit(fl, s, True, root),
                "fastlight, everything off": lambda s: _framework_fit(fl, s, False, root),
            }
            if not quick:
                cands["fastlight fused=False, everything off"] = lambda s: _framework_fit(fl, s, False, root, fused=False)
            if lpl is not None:
                cands["pytorch_lightning, defaults"] = lambda s: _framework_fit(lpl, s, True, root)
                cands["pytorch_lightning, everything off"] = lambda s: _framework_fit(lpl, s, False, root)
            per_step = {k: v * 1e3 for k, v in per_step_seconds(cands, long, short, repeats, clock=time.thread_time).items()}
        base = per_step["raw PyTorch loop"]
        for cand, ms in per_step.items():
            rows.append(dict(name="train step, MLP 64-64-10 b32 SGD, 1 thread, ms", candidate=cand, median_ms=ms,
                             ratio=ms / base))
        if lpl is not None:
            rows.append(dict(name="train step, MLP 64-64-10 b32 SGD, 1 thread, ms",
                             candidate="fastlight defaults / lightning defaults",
                             median_ms=per_step["fastlight, defaults"],
                             ratio=per_step["fastlight, defaults"] / per_step["pytorch_lightning, defaults"]))
        imp_repeats = 2 if quick else 9
        mods = ["torch", "fastlight"] + (["pytorch_lightning"] if lpl is not None else [])
        samples: Dict[str, List[float]] = {m: [] for m in mods}
        for _ in range(imp_repeats):  # interleaved, like the step timings
            for m in mods:
                samples[m].append(_import_ms(m, 1))
        imports = {m: statistics.median(v) for m, v in samples.items()}
        for m, ms in imports.items():
            rows.append(dict(name="import (fresh process), ms", candidate=f"import {m}", median_ms=ms,
                             ratio=ms / imports["torch"]))
    finally:
        torch.set_num_threads(threads)
    return rows


if __name__ == "__main__":
    from .harness import format_table

    print(format_table(run("--quick" in sys.argv, "cpu"), COLUMNS, NOTES))
