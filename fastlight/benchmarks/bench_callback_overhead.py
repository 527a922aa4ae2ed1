"""Per-step cost of the default callbacks' hooks (progress bar, checkpointing) on a fake trainer, fastlight vs Lightning.

Only the callback side of a step: what on_train_batch_start/end of TQDMProgressBar + ModelCheckpoint (+ optional
LearningRateMonitor) cost per training step, with metrics held as tensors (as fastlight's loop keeps them).
It drives the callbacks with the repository's tests/fake_trainer.py, so it runs from a source checkout only
(skipped with the reason elsewhere). Run: python -m fastlight.benchmarks --only callback_overhead
"""
import io
import sys
import tempfile
import time
from contextlib import redirect_stdout

import torch

from .harness import MS, RATIO, Skip

COLUMNS = (MS, RATIO)
NOTES = ("ms: the callbacks' batch hooks per training step (the fake trainer does no training), median of "
         "interleaved rounds.", "x base: / Lightning's callbacks' time (below 1: faster).")


def _fake_trainer_class():
    try:
        from tests.fake_trainer import FakeTrainer
    except ImportError as e:
        raise Skip(f"needs the repository's tests/fake_trainer.py on the path (a source checkout): {e}") from None
    return FakeTrainer


def per_step_us(callbacks, steps=20000):
    FakeTrainer = _fake_trainer_class()
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
    try:
        import pytorch_lightning as pl
    except ImportError:
        raise Skip("pytorch_lightning is not installed: it is the baseline here") from None

    import fastlight.callbacks as flc

    return {
        "lightning TQDM + ModelCheckpoint": lambda: [pl.callbacks.TQDMProgressBar(),
                                                     pl.callbacks.ModelCheckpoint(dirpath=tempfile.mkdtemp())],
        "fastlight TQDM + ModelCheckpoint": lambda: [flc.TQDMProgressBar(),
                                                     flc.ModelCheckpoint(dirpath=tempfile.mkdtemp())],
    }


def run(quick: bool = False, device: str = "cpu"):
    """Rows for the harness: hook cost per step, candidates interleaved, median of rounds (CPU only)."""
    if device != "cpu":
        raise Skip("host-side hooks only: CPU")
    _fake_trainer_class()
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    steps, rounds = (2000, 3) if quick else (20000, 5)
    cands = _candidates()
    samples = {k: [] for k in cands}
    try:
        for r in range(rounds):
            for name in (list(cands) if r % 2 == 0 else list(cands)[::-1]):
                samples[name].append(per_step_us(cands[name](), steps=steps))
    finally:
        torch.set_num_threads(threads)
    med = {k: sorted(v)[len(v) // 2] for k, v in samples.items()}
    base = med["lightning TQDM + ModelCheckpoint"]
    name = "callback hooks per train step (fake trainer)"
    return [dict(name=name, candidate=k, median_ms=v / 1e3, ratio=v / base) for k, v in med.items()]


def main():
    for row in run(quick="--quick" in sys.argv):
        print(f"{row['candidate']:<36} {row['median_ms'] * 1e3:8.2f} us/step  x{row['ratio']:.4f} of Lightning's")


if __name__ == "__main__":
    main()
