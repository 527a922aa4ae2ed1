"""End to end: the CIFAR-10 example's model (torchvision ResNet-18 with the 3x3 stem, 10 classes, Adam 1e-3)
trained by fastlight (fused=True, the default; and fused=False; on CUDA also flat_grads=True), by pytorch_lightning and by a raw PyTorch
loop, in bf16-mixed and 16-mixed (16-mixed only on CUDA: on the CPU both frameworks turn it into bf16-mixed).

Same synthetic data for everyone (CIFAR-shaped random tensors, nothing downloaded), interleaved rounds.
Per-step time = (time of a run of N steps - time of a run of M steps) / (N - M), so the fixed cost of a fit
(Trainer set-up, hooks, the first steps' allocations) cancels out; reported as samples/s.

    python benchmarks/bench_e2e.py [--quick] [--device cuda]
    python -m benchmarks --only e2e [--device cuda]
"""
import os
import sys
import tempfile
from typing import Callable, Dict, List

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset

try:
    from .harness import per_step_seconds
except ImportError:  # run as a script
    from harness import per_step_seconds

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def _model() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)  # as examples/cifar10.py
    model.maxpool = nn.Identity()
    return model


def _loader(steps: int, batch: int) -> DataLoader:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(steps * batch, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (steps * batch,), generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=False,
                      pin_memory=torch.cuda.is_available())


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _raw_loop(device: str, precision: str, steps: int, batch: int) -> None:
    torch.manual_seed(0)
    model = _model().to(device)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    dtype = torch.float16 if precision == "16-mixed" else torch.bfloat16
    scaler = torch.amp.GradScaler(device) if precision == "16-mixed" else None
    model.train()
    for x, y in _loader(steps, batch):
        x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
        opt.zero_grad()
        with torch.autocast(device, dtype=dtype):
            loss = F.cross_entropy(model(x), y)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
    _sync(device)


def _raw_loop_kernel_ms(precision: str, batch: int, steps: int = 12) -> float:
    """GPU kernel time per step of the raw loop (torch.profiler, CUDA activity): next to the wall time per
    step it says whether the step is bound by the GPU (equal) or by the host (kernel time well below)."""
    from torch.profiler import ProfilerActivity, profile

    _raw_loop("cuda", precision, 4, batch)  # warm-up outside the profile
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        _raw_loop("cuda", precision, steps, batch)
    total_us = sum(getattr(e, "self_device_time_total", 0.0) for e in prof.key_averages())
    return total_us / 1e3 / steps


def _module_class(pl):
    class LitResnet(pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.model = _model()

        def training_step(self, batch, batch_idx):
            x, y = batch
            loss = F.cross_entropy(self.model(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-3)

    return LitResnet


def _framework_fit(pl, device: str, precision: str, steps: int, batch: int, root: str, **extra) -> None:
    torch.manual_seed(0)
    trainer = pl.Trainer(max_steps=steps, max_epochs=-1, accelerator=device, devices=1, precision=precision,
                         logger=False, enable_progress_bar=False, enable_model_summary=False,
                         enable_checkpointing=False, num_sanity_val_steps=0, default_root_dir=root, **extra)
    trainer.fit(_module_class(pl)(), train_dataloaders=_loader(steps, batch))
    _sync(device)


def run(quick: bool, device: str) -> List[dict]:
    """Rows: name, candidate, samples_per_s, median_ms (per step), ratio (time per step over
    pytorch_lightning's, the harness's convention: below 1 is faster), speedup (samples/s over Lightning's)."""
    try:
        import torchvision  # noqa: F401
    except ImportError:
        return []
    import fastlight as fl

    try:
        import pytorch_lightning as lpl
    except ImportError:
        lpl = None
    if device == "cuda":
        batch = 128
        long, short, repeats = (30, 10, 3) if quick else (60, 15, 5)
        precisions = ["bf16-mixed", "16-mixed"]
    else:
        batch = 8 if quick else 32
        long, short, repeats = (3, 1, 2) if quick else (12, 4, 3)
        precisions = ["bf16-mixed"]
    rows: List[dict] = []
    with tempfile.TemporaryDirectory() as root:
        for precision in precisions:
            cands: Dict[str, Callable[[int], None]] = {
                "raw PyTorch loop (Adam default)": lambda s, p=precision: _raw_loop(device, p, s, batch),
                "fastlight fused=True": lambda s, p=precision: _framework_fit(fl, device, p, s, batch, root),
                "fastlight fused=False": lambda s, p=precision: _framework_fit(fl, device, p, s, batch, root,
                                                                               fused=False),
            }
            if device == "cuda":  # flat gradient buffers (off by default) against the default
                cands["fastlight fused=True flat_grads=True"] = lambda s, p=precision: _framework_fit(
                    fl, device, p, s, batch, root, flat_grads=True)
            if lpl is not None:
                cands["pytorch_lightning"] = lambda s, p=precision: _framework_fit(lpl, device, p, s, batch, root)
            per_step = per_step_seconds(cands, long, short, repeats, floor=1e-9)
            base = per_step.get("pytorch_lightning")
            name = f"ResNet-18 CIFAR b{batch} {precision}, Adam"
            for cand, sec in per_step.items():
                rows.append(dict(name=name, candidate=cand, samples_per_s=batch / sec, median_ms=sec * 1e3,
                                 ratio=(sec / base) if base else float("nan"),
                                 speedup=(base / sec) if base else float("nan")))
            if device == "cuda":
                try:
                    rows.append(dict(name=name, candidate="raw loop: GPU kernel time per step (profiler)",
                                     median_ms=_raw_loop_kernel_ms(precision, batch)))
                except Exception as e:  # no CUPTI: the row is informative only
                    print(f"kernel-time row skipped: {e}", file=sys.stderr)
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv
    dev = "cuda" if "--device" in sys.argv and sys.argv[sys.argv.index("--device") + 1] == "cuda" else "cpu"
    for row in run(quick, dev):
        print(f"{row['name']:<40} {row['candidate']:<34} {row['samples_per_s']:10.1f} samples/s "
              f"{row['median_ms']:9.2f} ms/step  x{row['speedup']:.3f} vs lightning")
