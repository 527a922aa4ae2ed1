"""Per-step cost of the default callbacks' hooks (progress bar, checkpointing) on a fake trainer, fastlight vs Lightning.

Only the callback side of a step: what on_train_batch_start/end of TQDMProgressBar + ModelCheckpoint (+ optional
LearningRateMonitor) cost per training step, with metrics held as tensors (as fastlight's loop keeps them).
Run: python benchmarks/bench_callback_overhead.py
"""
import io
import os
import sys
import tempfile
import time
from contextlib import redirect_stdout

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from tests.fake_trainer import FakeTrainer  # noqa: E402


def per_step_us(callbacks, steps=20000):
    with tempfile.TemporaryDirectory() as root:
        trainer = FakeTrainer(root, callbacks=callbacks, num_training_batches=steps)
        module = torch.nn.Linear(2, 2)
        module.automatic_optimization = True
        trainer._progress_bar_metrics["loss"] = torch.tensor(0.5)
        trainer.callback_metrics["loss"] = torch.tensor(0.5)
        out = io.StringIO()
        with redirect_stdout(out):
            for cb in callbacks:
                cb.setup(trainer, module, "fit")
                cb.on_train_start(trainer, module)
                cb.on_train_epoch_start(trainer, module)
            t0 = time.perf_counter()
            for b in range(steps):
                for cb in callbacks:
                    cb.on_train_batch_start(trainer, module, None, b)
                trainer.step()
                for cb in callbacks:
                    cb.on_train_batch_end(trainer, module, None, None, b)
            dt = time.perf_counter() - t0
            for cb in callbacks:
                cb.on_train_end(trainer, module)
        return dt / steps * 1e6


def _candidates():
    import pytorch_lightning as pl

    import fastlight.callbacks as flc

    return {
        "lightning TQDM + ModelCheckpoint": lambda: [pl.callbacks.TQDMProgressBar(),
                                                     pl.callbacks.ModelCheckpoint(dirpath=tempfile.mkdtemp())],
        "fastlight TQDM + ModelCheckpoint": lambda: [flc.TQDMProgressBar(),
                                                     flc.ModelCheckpoint(dirpath=tempfile.mkdtemp())],
    }


def run(quick: bool = False, device: str = "cpu"):
    """Rows for the harness: hook cost per step, candidates interleaved, median of rounds (CPU only)."""
    torch.set_num_threads(1)
    steps, rounds = (2000, 3) if quick else (20000, 5)
    cands = _candidates()
    samples = {k: [] for k in cands}
    for r in range(rounds):
        for name in (list(cands) if r % 2 == 0 else list(cands)[::-1]):
            samples[name].append(per_step_us(cands[name](), steps=steps))
    med = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    base = med["lightning TQDM + ModelCheckpoint"]
    name = "callback hooks per train step (fake trainer)"
    return [dict(name=name, candidate=k, median_ms=v / 1e3, ratio=v / base) for k, v in med.items()]


def main():
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['candidate']:<36} {row['median_ms'] * 1e3:8.2f} us/step  x{row['ratio']:.4f} of Lightning's")


if __name__ == "__main__":
    main()
