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


def main():
    import pytorch_lightning as pl

    import fastlight.callbacks as flc

    torch.set_num_threads(1)
    for label, make in (
        ("fastlight  TQDM(refresh 1) + ModelCheckpoint", lambda: [flc.TQDMProgressBar(), flc.ModelCheckpoint(dirpath=tempfile.mkdtemp())]),
        ("lightning  TQDM(refresh 1) + ModelCheckpoint", lambda: [pl.callbacks.TQDMProgressBar(), pl.callbacks.ModelCheckpoint(dirpath=tempfile.mkdtemp())]),
    ):
        runs = [per_step_us(make()) for _ in range(3)]
        print(f"{label}: {min(runs):7.2f} us/step (best of 3)")


if __name__ == "__main__":
    main()
