"""Kill it anywhere, resume bit-identical: a fit SIGKILLed at random moments and restarted with
`fit(ckpt_path="last")` until it completes ends with the uninterrupted run's weights bit for bit (dropout, shuffle,
python/numpy random, per-step and per-epoch schedulers, fused on and off, gradient accumulation, validation inside the
epoch on two loaders, checkpoints every N steps and every epoch; 2 DDP gloo ranks). Also: what the checkpoint holds,
Lightning loading it, and resuming a checkpoint without the random state.

The children are forked from a forkserver that imported torch once (tests/_resume_helpers.py).
"""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

import fastlight
from fastlight.trainer.resume_state import RESUME_KEY
from fastlight.utilities.checkpoint_io import load_checkpoint

import _resume_helpers as H
from _resume_helpers import TIMEOUT, forkserver, reference, run_child, wait_for_step

ROOT = Path(__file__).resolve().parents[1]
DDP_SCRIPT = ROOT / "tests" / "ddp_scripts" / "resume_fit.py"
KILL_ROUNDS = 3  # SIGKILLs per configuration before the run is let finish


@pytest.fixture(scope="module")
def ctx():
    return forkserver()


def total_steps(name):
    cfg = H.CONFIGS[name]
    return cfg["epochs"] * (H.SAMPLES // H.BATCH) // cfg["accumulate"]


CPU_CONFIGS = sorted(n for n, c in H.CONFIGS.items() if c.get("accelerator", "cpu") == "cpu")
NEEDS_CUDA = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]


@pytest.mark.slow  # subprocess runs killed with SIGKILL and resumed
@pytest.mark.parametrize("name", CPU_CONFIGS + [pytest.param("cuda_16mixed", marks=NEEDS_CUDA)])
def test_sigkill_at_random_moments_then_resume_from_last_is_bit_identical(tmp_path, ctx, name):
    expected = reference(ctx, name, tmp_path / "full")
    root = tmp_path / "killed"
    os.makedirs(root)
    rng = random.Random(hash(name) & 0xFFFF)
    steps = total_steps(name)
    counter = ctx.Value("i", 0)
    kills = []
    for round_ in range(KILL_ROUNDS):
        counter.value = 0
        p = run_child(ctx, name, str(root), round_ > 0, counter=counter, delay=0.004)
        target = rng.randint(1, steps - 1)
        wait_for_step(p, counter, target, time.monotonic() + TIMEOUT)
        time.sleep(rng.uniform(0, 0.012))  # anywhere in the next step or its checkpoint write
        p.kill()  # SIGKILL
        p.join(TIMEOUT)
        kills.append((target, counter.value, p.exitcode))
    p = run_child(ctx, name, str(root), True)
    p.join(TIMEOUT)
    assert p.exitcode == 0, (kills, open(next(root.glob("stderr-*.txt"))).read()[-3000:])
    assert any(code == -signal.SIGKILL for *_, code in kills), kills  # at least one kill landed during the fit
    assert H.same_weights(torch.load(root / "final.pt"), expected), kills
    if H.CONFIGS[name].get("precision") == "16-mixed":
        ckpt = load_checkpoint(root / "steps" / "last.ckpt")
        assert {"scale", "_growth_tracker"} <= set(ckpt["MixedPrecision"])
        assert "torch.cuda" in ckpt[RESUME_KEY]["ranks"][0]["rng"]


def test_checkpoint_holds_the_random_and_loader_state_and_lightning_loads_it(tmp_path, ctx):
    pl = pytest.importorskip("pytorch_lightning")
    root = tmp_path / "run"
    reference(ctx, "accumulate_val", root)
    ckpt = load_checkpoint(root / "steps" / "last.ckpt")
    entry = ckpt[RESUME_KEY]
    assert entry["format"] == 1 and entry["world_size"] == 1 and len(entry["ranks"]) == 1
    rank = entry["ranks"][0]
    assert set(rank["rng"]) == {"torch", "python", "numpy"}
    assert rank["train_iterator"]["at_iter"]["rng"]["torch"].dtype == torch.uint8
    assert rank["phase"] in ("train_batch_end", "validation", "epoch_end")
    # torch's own safe loader reads it (no allowlist needed), and so does Lightning's fit
    torch.load(root / "steps" / "last.ckpt", weights_only=True)

    class PLNet(pl.LightningModule):
        training_step = H.Net.training_step
        configure_optimizers = H.Net.configure_optimizers

        def __init__(self):
            super().__init__()
            self.net = H.Net().net
            self.interval = "epoch"

    trainer = pl.Trainer(max_epochs=5, accumulate_grad_batches=2, logger=False, enable_progress_bar=False,
                         enable_model_summary=False, enable_checkpointing=False, limit_val_batches=0,
                         default_root_dir=str(tmp_path / "pl"))
    trainer.fit(PLNet(), torch.utils.data.DataLoader(H.data(), batch_size=8),
                ckpt_path=str(root / "steps" / "last.ckpt"))
    assert trainer.global_step == 15


def test_checkpoint_without_random_state_still_resumes_and_says_so_once(tmp_path, caplog):
    import logging

    trainer, model, train, _ = H.build("unfused", str(tmp_path / "a"))
    trainer.fit(model, train)
    ckpt = load_checkpoint(tmp_path / "a" / "steps" / "last.ckpt")
    del ckpt[RESUME_KEY]  # what Lightning or an older fastlight writes
    old = tmp_path / "old.ckpt"
    torch.save(ckpt, old)
    model = H.Net()
    model.interval = "step"
    trainer = fastlight.Trainer(max_epochs=4, fused=False, logger=False, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False)
    with caplog.at_level(logging.INFO):
        trainer.fit(model, train, ckpt_path=str(old))
    said = [r.getMessage() for r in caplog.records if "holds no random-number" in r.getMessage()]
    assert len(said) == 1 and str(old) in said[0]
    assert trainer.global_step == 24


class SaveAt(fastlight.Callback):
    """Writes one checkpoint from on_train_batch_end at (epoch, batch_idx)."""

    def __init__(self, path, epoch, batch_idx):
        self.path, self.at = path, (epoch, batch_idx)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if (trainer.current_epoch, batch_idx) == self.at:
            trainer.save_checkpoint(self.path)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "unfused"])
def test_a_save_inside_an_accumulation_window_keeps_its_gradients_and_resumes_bit_identical(tmp_path, fused):
    # accumulate_grad_batches=2: batch 0 of epoch 1 only accumulates, so the checkpoint falls inside a window (what a
    # resumed run's ModelCheckpoint(every_n_train_steps=...) writes at the step it resumed at)
    H.CONFIGS["_window"] = {**H.CONFIGS["accumulate_val"], "fused": fused}
    try:
        trainer, model, train, val = H.build("_window", str(tmp_path / "full"),
                                             extra_callbacks=[SaveAt(tmp_path / "window.ckpt", 1, 0)])
        trainer.fit(model, train, val)
        expected = {k: v.detach().clone() for k, v in model.state_dict().items()}
        ckpt = load_checkpoint(tmp_path / "window.ckpt")
        grads = ckpt[RESUME_KEY]["ranks"][0]["partial_gradients"]
        assert set(grads) == {n for n, _ in model.named_parameters()}

        def resume(path, root):
            trainer, model, train, val = H.build("_window", str(tmp_path / root))
            trainer.fit(model, train, val, ckpt_path=str(path))
            return model.state_dict()

        assert H.same_weights(resume(tmp_path / "window.ckpt", "resumed"), expected)
        # without them the window's first batch is lost (Lightning's behaviour): the weights differ
        del ckpt[RESUME_KEY]["ranks"][0]["partial_gradients"]
        torch.save(ckpt, tmp_path / "no_grads.ckpt")
        assert not H.same_weights(resume(tmp_path / "no_grads.ckpt", "lossy"), expected)
    finally:
        del H.CONFIGS["_window"]


class StatefulLoader:
    """Lightning's `_Stateful` protocol in small (what torchdata's StatefulDataLoader offers): a shuffled DataLoader
    that saves the generator state of its epoch and how many batches it yielded, and resumes from them."""

    def __init__(self):
        self.loader = DataLoader(H.data(), batch_size=H.BATCH, shuffle=True,
                                 generator=torch.Generator().manual_seed(5))
        self.yielded, self.epoch_state, self.resume_from, self.loaded = 0, None, None, []

    def __len__(self):
        return len(self.loader)

    def __iter__(self):
        skip = 0
        if self.resume_from is not None:
            state, skip = self.resume_from
            self.loader.generator.set_state(state)
            self.resume_from = None
        self.epoch_state = self.loader.generator.get_state()
        self.yielded = 0
        it = iter(self.loader)
        for _ in range(skip):
            next(it)
            self.yielded += 1
        return self._count(it)

    def _count(self, it):
        for batch in it:
            self.yielded += 1
            yield batch

    def state_dict(self):
        return {"generator": self.epoch_state, "yielded": self.yielded}

    def load_state_dict(self, state):
        self.loaded.append(state["yielded"])
        self.resume_from = (state["generator"], state["yielded"])


def test_stateful_loader_state_is_saved_where_lightning_puts_it_and_restored_instead_of_skipping(tmp_path, caplog):
    import logging

    def fit(root, ckpt_path=None):
        trainer, model, _, _ = H.build("unfused", str(root))
        loader = StatefulLoader()
        with caplog.at_level(logging.INFO):
            trainer.fit(model, loader, ckpt_path=ckpt_path)
        return model, loader

    full, _ = fit(tmp_path / "full")
    trainer, model, _, _ = H.build("unfused", str(tmp_path / "a"), max_steps=8)  # stops in epoch 1, after batch 2
    trainer.fit(model, StatefulLoader())
    path = tmp_path / "a" / "steps" / "last.ckpt"
    ckpt = load_checkpoint(path)
    assert ckpt["loops"]["fit_loop"]["state_dict"]["combined_loader"][0]["yielded"] == 2  # batch 2 of epoch 1
    caplog.clear()
    resumed, loader = fit(tmp_path / "b", str(path))
    assert loader.loaded == [2]
    assert not [r for r in caplog.records if "skipping its first" in r.getMessage()]
    assert H.same_weights(resumed.state_dict(), full.state_dict())


@pytest.fixture(scope="module")
def ddp_reference(tmp_path_factory):
    """The uninterrupted 2-rank run; it also measures the per-step cost of the rank-consistent signal check."""
    ref = tmp_path_factory.mktemp("ddp_ref")
    out = run_ddp(ref, False, "--measure-poll")
    cost = [line.split() for line in out.splitlines() if line.startswith("POLL_US")][-1]
    print(f"\nsignal check under DDP (2 gloo ranks): {cost[1]} us per step, the whole step {cost[3]} us")
    return torch.load(ref / "final.pt")


@pytest.mark.slow
def test_ddp_two_ranks_sigkill_then_resume_is_bit_identical(tmp_path, ddp_reference):
    """2 gloo ranks (strategy="ddp", the script re-run for rank 1): each rank's RNG state is in rank 0's file."""
    root = tmp_path / "killed"
    rng = random.Random(7)
    kills = []
    for round_ in range(2):
        proc = start_ddp(root, round_ > 0)
        target = rng.randint(2, 14)
        deadline = time.monotonic() + TIMEOUT
        while proc.poll() is None and read_step(root) < target and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.02))
        kills.append((target, read_step(root), proc.poll()))
        os.killpg(proc.pid, signal.SIGKILL)  # both ranks
        proc.wait(TIMEOUT)
    run_ddp(root, True)
    assert H.same_weights(torch.load(root / "final.pt"), ddp_reference), kills
    ckpt = load_checkpoint(root / "steps" / "last.ckpt")
    assert ckpt[RESUME_KEY]["world_size"] == 2 and len(ckpt[RESUME_KEY]["ranks"]) == 2
    r0, r1 = ckpt[RESUME_KEY]["ranks"]  # one set per rank
    assert r0["samplers"] == r1["samplers"] == [{"epoch": r0["samplers"][0]["epoch"], "seed": 0}]


@pytest.mark.slow
@pytest.mark.parametrize("signum, rank", [(signal.SIGTERM, 1), (signal.SIGINT, 0)])
def test_ddp_signal_to_one_rank_stops_every_rank_at_the_same_batch_and_resumes_bit_identical(
        tmp_path, ddp_reference, signum, rank):
    root = tmp_path / "run"
    proc = start_ddp(root, False, "--delay", "0.03")
    deadline = time.monotonic() + TIMEOUT
    while proc.poll() is None and (read_step(root) < 5 or not (root / f"pid-{rank}.txt").exists()) \
            and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(int((root / f"pid-{rank}.txt").read_text()), signum)  # this rank only
    try:
        out, _ = proc.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        raise AssertionError("the ranks hung after a signal to one of them")
    assert proc.returncode == (0 if signum == signal.SIGTERM else 1), out[-4000:]
    recs = [json.loads((root / f"record-{r}.json").read_text()) for r in range(2)]
    kind = "SIGTERMException" if signum == signal.SIGTERM else "KeyboardInterrupt"
    assert [r["on_exception"] for r in recs] == [kind, kind]
    assert recs[0]["step_at_exception"] == recs[1]["step_at_exception"]  # the same batch
    assert "Traceback" not in out
    path = root / ("steps/last.ckpt" if signum == signal.SIGTERM else "exc/on_exception.ckpt")
    assert load_checkpoint(path)["global_step"] == recs[0]["step_at_exception"]
    resumed = tmp_path / "resumed"
    run_ddp(resumed, False, "--ckpt", str(path))
    assert H.same_weights(torch.load(resumed / "final.pt"), ddp_reference)


def ddp_env():
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MASTER_", "LOCAL_RANK", "WORLD_SIZE", "RANK",
                                                                     "NODE_RANK", "SLURM_", "FASTLIGHT_LAUNCHER"))}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def start_ddp(root, resume=False, *extra):
    os.makedirs(root, exist_ok=True)
    cmd = [sys.executable, str(DDP_SCRIPT), "--root", str(root), *(["--resume"] if resume else []), *extra]
    return subprocess.Popen(cmd, env=ddp_env(), cwd=str(ROOT), start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def run_ddp(root, resume=False, *extra):
    proc = start_ddp(root, resume, *extra)
    out, _ = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == 0, out[-4000:]
    return out


def read_step(root):
    try:
        return int((Path(root) / "step.txt").read_text() or 0)
    except (FileNotFoundError, ValueError):
        return 0
