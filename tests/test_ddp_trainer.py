"""Trainer-level DDP tests (CPU, gloo, 2 processes): the same user script under fastlight and pytorch_lightning.

The first test needs no Trainer: a hand-written loop on fastlight.strategies must give Lightning's DDP weights
bit for bit (the wiring contract). The others need fastlight.Trainer wired to fastlight.strategies and are
skipped until it exists.
"""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import fastlight

ROOT = Path(__file__).resolve().parents[1]
FIT = ROOT / "tests" / "ddp_scripts" / "fit_tiny.py"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from tests.test_ddp_launch import assert_same_weights, clean_env  # noqa: E402

pytestmark = pytest.mark.slow  # 2-process runs, Lightning's among them (~20 s each under load)
needs_trainer = pytest.mark.skipif(not hasattr(fastlight, "Trainer"), reason="needs fastlight.Trainer")


def run_fit(framework, out, *extra, timeout=120):
    cmd = [sys.executable, str(FIT), "--framework", framework, "--out", str(out), *map(str, extra)]
    proc = subprocess.run(cmd, env=clean_env(), capture_output=True, text=True, timeout=timeout, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    return proc


def load(out, mode, rank):
    return torch.load(Path(out) / f"{mode}_rank{rank}.pt", weights_only=False)


@pytest.fixture(scope="module")
def lightning_ddp_fit(tmp_path_factory):
    out = tmp_path_factory.mktemp("pl_ddp")
    run_fit("pytorch_lightning", out)
    return out


def test_strategy_driven_loop_reproduces_lightning_ddp_fit(tmp_path, lightning_ddp_fit):
    run_fit("strategy", tmp_path)
    for rank in range(2):
        ours, theirs = load(tmp_path, "fit", rank), load(lightning_ddp_fit, "fit", rank)
        assert ours["global_step"] == theirs["global_step"]
        assert_same_weights(ours["state_dict"], theirs["state_dict"], atol=0)


@needs_trainer
def test_ddp_fit_matches_lightning_ddp_fit(tmp_path, lightning_ddp_fit):
    run_fit("fastlight", tmp_path / "fl")
    for rank in range(2):
        ours, theirs = load(tmp_path / "fl", "fit", rank), load(lightning_ddp_fit, "fit", rank)
        assert ours["global_step"] == theirs["global_step"]
        assert_same_weights(ours["state_dict"], theirs["state_dict"], atol=1e-6)
        for key in ("train_loss", "val_loss", "val_max", "val_gathered_min", "val_mae"):
            torch.testing.assert_close(ours["metrics"][key], theirs["metrics"][key], atol=1e-6, rtol=0)
    # both ranks hold the same weights and the same synced metrics
    r0, r1 = load(tmp_path / "fl", "fit", 0), load(tmp_path / "fl", "fit", 1)
    assert_same_weights(r0["state_dict"], r1["state_dict"], atol=0)
    assert r0["metrics"].keys() == r1["metrics"].keys()
    for key in r0["metrics"]:
        assert torch.equal(r0["metrics"][key], r1["metrics"][key]), key


@needs_trainer
def test_ddp_spawn_brings_rank_zero_results_back_to_the_calling_process(tmp_path, lightning_ddp_fit):
    run_fit("fastlight", tmp_path, "--strategy", "ddp_spawn")  # the calling process writes fit_rank0.pt
    ours, theirs = load(tmp_path, "fit", 0), load(lightning_ddp_fit, "fit", 0)
    assert ours["global_step"] == theirs["global_step"]
    assert_same_weights(ours["state_dict"], theirs["state_dict"], atol=1e-6)
    for key in ("train_loss", "val_loss", "val_max"):
        torch.testing.assert_close(ours["metrics"][key], theirs["metrics"][key], atol=1e-6, rtol=0)


@needs_trainer
def test_sync_dist_metrics_equal_across_ranks_and_match_one_process(tmp_path):
    run_fit("fastlight", tmp_path / "two", "--mode", "validate", "--devices", 2)
    run_fit("fastlight", tmp_path / "one", "--mode", "validate", "--devices", 1, "--strategy", "auto")
    one = load(tmp_path / "one", "validate", 0)
    # val_max is the max of per-batch losses, and the ranks' batches are not the one process's batches: rank r
    # sees samples r, r + 2, ... (DistributedSampler, no shuffling). Recompute it from the same weights and data.
    net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.Tanh(), torch.nn.Linear(16, 2))
    net.load_state_dict({k.removeprefix("net."): v for k, v in one["state_dict"].items()})
    g = torch.Generator().manual_seed(2)  # fit_tiny.py's dataset(32, 2)
    x, y = torch.randn(32, 6, generator=g), torch.randn(32, 2, generator=g)
    with torch.no_grad():
        shard_batches = [(x[r::2][i:i + 8], y[r::2][i:i + 8]) for r in range(2) for i in (0, 8)]
        expected_max = max(torch.nn.functional.mse_loss(net(bx), by) for bx, by in shard_batches)
    for rank in range(2):
        two = load(tmp_path / "two", "validate", rank)["metrics"]
        torch.testing.assert_close(two["val_loss"], one["metrics"]["val_loss"], atol=1e-6, rtol=0)
        torch.testing.assert_close(two["val_max"], expected_max, atol=1e-6, rtol=0)


@needs_trainer
@pytest.mark.skipif(
    not hasattr(getattr(fastlight, "Trainer", None), "save_checkpoint"),
    reason="needs Trainer.save_checkpoint and ckpt_path restore (wired on branch wire-surface)",
)
def test_checkpoint_from_two_ranks_resumes_in_one_process(tmp_path):
    run_fit("fastlight", tmp_path / "two")
    ckpt = tmp_path / "two" / "last.ckpt"
    assert ckpt.exists()
    run_fit("fastlight", tmp_path / "one", "--mode", "resume", "--devices", 1, "--strategy", "auto", "--ckpt", ckpt)
    resumed = load(tmp_path / "one", "resume", 0)
    assert resumed["global_step"] > load(tmp_path / "two", "fit", 0)["global_step"]


@needs_trainer
@pytest.mark.skipif(not (ROOT / "examples" / "cifar10.py").exists(), reason="needs examples/cifar10.py")
@pytest.mark.skipif(
    not hasattr(getattr(fastlight, "Trainer", None), "save_checkpoint"),
    reason="the example checkpoints: needs Trainer.save_checkpoint (wired on branch wire-surface)",
)
def test_cifar10_example_runs_with_two_cpu_ranks(tmp_path):
    cmd = [sys.executable, "examples/cifar10.py", "--devices", "2", "--accelerator", "cpu", "--strategy", "ddp",
           "--limit-batches", "5", "--default-root-dir", str(tmp_path)]
    env = clean_env()
    env["FASTLIGHT_TEST_OUT"] = str(tmp_path)
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    assert proc.stdout.count("Summary") == 1  # rank 0 reports
