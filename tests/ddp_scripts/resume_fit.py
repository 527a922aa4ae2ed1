"""A 2-rank DDP fit (gloo, strategy="ddp": this script is re-run for rank 1) with dropout, a shuffled loader (the
injected DistributedSampler), python/numpy random and a per-step scheduler, a checkpoint after every step; for
tests/test_exact_resume.py and tests/test_signals.py.

Rank 0 writes <root>/step.txt (the global step after each batch) and <root>/final.pt (the weights at a normal end);
every rank writes <root>/pid-<rank>.txt and, at the end, <root>/record-<rank>.json.
"""
import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
import torch  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

import fastlight as pl  # noqa: E402
import _resume_helpers as H  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--root", required=True)
parser.add_argument("--resume", action="store_true")
parser.add_argument("--ckpt", default=None)
parser.add_argument("--delay", type=float, default=0.004)
parser.add_argument("--measure-poll", action="store_true")
args = parser.parse_args()


class Report(pl.Callback):
    def __init__(self):
        self.seen = {}

    poll_s, polls, step_s, steps, _t = 0.0, 0, 0.0, 0, None

    def on_train_start(self, trainer, pl_module):
        if args.measure_poll:
            loop, poll = trainer.fit_loop, trainer.fit_loop._poll_signals

            def timed():
                start = time.perf_counter()
                out = poll()
                self.poll_s += time.perf_counter() - start
                self.polls += 1
                return out

            loop._poll_signals = timed
        with open(os.path.join(args.root, f"pid-{trainer.global_rank}.txt"), "w") as f:
            f.write(str(os.getpid()))

    def on_train_batch_end(self, trainer, *a):
        now = time.perf_counter()
        if self._t is not None:
            self.step_s, self.steps = self.step_s + now - self._t, self.steps + 1
        self._t = now
        self.seen["last_step"] = trainer.global_step
        if trainer.is_global_zero:
            tmp = os.path.join(args.root, "step.tmp")
            with open(tmp, "w") as f:
                f.write(str(trainer.global_step))
            os.replace(tmp, os.path.join(args.root, "step.txt"))
        time.sleep(args.delay)

    def on_exception(self, trainer, pl_module, exception):
        self.seen["on_exception"] = type(exception).__name__
        self.seen["step_at_exception"] = trainer.global_step

    def write(self, trainer):
        self.seen["status"] = str(trainer.state.status)
        with open(os.path.join(args.root, f"record-{trainer.global_rank}.json"), "w") as f:
            json.dump(self.seen, f)


pl.seed_everything(0, verbose=False)
model = H.Net()
model.interval = "step"
report = Report()
trainer = pl.Trainer(
    accelerator="cpu", devices=2, strategy="ddp", max_epochs=4, logger=False, enable_progress_bar=False,
    enable_model_summary=False, default_root_dir=args.root, num_sanity_val_steps=0,
    callbacks=[pl.callbacks.ModelCheckpoint(dirpath=os.path.join(args.root, "steps"), every_n_train_steps=1,
                                            save_top_k=1, save_last=True), report,
               pl.callbacks.OnExceptionCheckpoint(dirpath=os.path.join(args.root, "exc"))],
)
try:
    trainer.fit(model, DataLoader(H.data(), batch_size=H.BATCH, shuffle=True),
                ckpt_path=args.ckpt or ("last" if args.resume else None))
finally:
    report.write(trainer)
if trainer.is_global_zero:
    torch.save({k: v.detach().clone() for k, v in model.state_dict().items()}, os.path.join(args.root, "final.pt"))
if args.measure_poll and trainer.is_global_zero:
    # the rank-consistent signal check (signals._RankConsistentPoll) timed inside the fit, against the whole step
    print(f"POLL_US {report.poll_s / report.polls * 1e6:.1f} STEP_US {report.step_s / report.steps * 1e6:.1f}")
