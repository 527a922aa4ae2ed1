"""Multi-process DDP tests (CPU, gloo, 2 ranks) of fastlight.strategies driven by a plain script.

Each test runs tests/ddp_scripts/train_tiny.py as a user would (plain python, torchrun-style environment,
torchrun itself, ddp_spawn) and checks what the ranks wrote.
"""
import glob
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "tests" / "ddp_scripts"
TINY = SCRIPTS / "train_tiny.py"
sys.path.insert(0, str(SCRIPTS))
from tiny_common import TinyModule, make_data  # noqa: E402

# each test starts 2-3 Python processes (torch import each): ~7-10 s on an idle 2-core machine
pytestmark = pytest.mark.slow

_LAUNCH_VARS = (
    "RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT", "NODE_RANK", "GROUP_RANK",
    "TORCHELASTIC_RUN_ID", "PL_GLOBAL_SEED", "FASTLIGHT_LAUNCHER_PID",
)


def clean_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in _LAUNCH_VARS and not k.startswith("SLURM_")}
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["OMP_NUM_THREADS"] = "1"
    env.update(extra)
    return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_script(args, env=None, timeout=60, cmd=None):
    cmd = cmd or [sys.executable, str(TINY)]
    start = time.monotonic()
    proc = subprocess.run(cmd + [str(a) for a in args], env=env or clean_env(), capture_output=True, text=True,
                          timeout=timeout, cwd=str(ROOT))
    return proc, time.monotonic() - start


def load_ranks(out: Path, world: int = 2):
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in range(world)]


def reference_weights(seen_per_rank, accumulate: int):
    """One process, plain torch: each optimizer step sees the concatenation of the ranks' micro-batches."""
    data = make_data()
    module = TinyModule()
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    steps = len(seen_per_rank[0])
    for i in range(steps):
        idx = [j for rank_seen in seen_per_rank for j in rank_seen[i]]
        batch = data[torch.tensor(idx)]
        (module.training_step(batch) / accumulate).backward()
        if (i + 1) % accumulate == 0:
            opt.step()
            opt.zero_grad()
    return module.state_dict()


def expected_seen(epochs: int, batch_size: int = 4):
    """Per rank, the sample indices of each step: a shuffling DistributedSampler (seed 0), set_epoch each epoch."""
    from torch.utils.data import DistributedSampler

    seen = []
    for rank in range(2):
        sampler = DistributedSampler(make_data(), num_replicas=2, rank=rank, shuffle=True, seed=0)
        steps = []
        for epoch in range(epochs):
            sampler.set_epoch(epoch)
            idx = list(sampler)
            steps += [idx[i : i + batch_size] for i in range(0, len(idx), batch_size)]
        seen.append(steps)
    return seen


def assert_same_weights(a, b, atol=1e-6):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=atol, rtol=0, msg=lambda m: f"{k}: {m}")


def test_plain_script_relaunches_itself_and_matches_one_process_on_concatenated_data(tmp_path):
    proc, _ = run_script(["--out", tmp_path, "--strategy", "ddp", "--devices", 2, "--accumulate", 2])
    assert proc.returncode == 0, proc.stderr
    started = glob.glob(str(tmp_path / "started_pid*"))
    # module-level code ran once per rank: the plain launch (no LOCAL_RANK yet) and the re-executed rank 1
    assert sorted(Path(p).read_text() for p in started) == ["1", "unset"]
    r0, r1 = load_ranks(tmp_path)
    assert (r0["rank"], r0["world_size"], r1["rank"], r1["local_rank"]) == (0, 2, 1, 1)
    assert (r0["from_rank_zero_only"], r1["from_rank_zero_only"]) == (0, 1)
    assert_same_weights(r0["state_dict"], r1["state_dict"], atol=0)
    # every sample seen once per epoch, split between the ranks
    per_epoch = len(r0["seen"]) // 2
    epoch0 = [i for r in (r0, r1) for b in r["seen"][:per_epoch] for i in b]
    assert sorted(epoch0) == list(range(len(make_data())))
    assert [r0["seen"], r1["seen"]] == expected_seen(epochs=2)
    assert_same_weights(r0["state_dict"], reference_weights([r0["seen"], r1["seen"]], accumulate=2))
    check_collectives([r0, r1])


def check_collectives(results):
    for r in results:
        c = r["collectives"]
        assert c["reduce_mean"].item() == 1.5 and c["reduce_sum"].item() == 3.0
        assert c["reduce_max"].item() == 2.0 and c["reduce_min"].item() == 1.0
        assert c["reduce_int_mean"].dtype == torch.int64 and c["reduce_int_mean"].item() == 2  # (2+3)//2
        assert c["gather"].tolist() == [[0, 0], [1, 10]]
        assert c["gather_dict"]["a"].tolist() == [0.0, 1.0] and c["gather_dict"]["b"][0].tolist() == [0.5, 1.5]
        assert c["broadcast"] == {"from": 1}
        assert c["bool_all"] is False and c["bool_any"] is True


def test_torchrun_style_environment_launches_nothing_and_trains_the_same(tmp_path):
    """Ranks started by the test with RANK/LOCAL_RANK/WORLD_SIZE/MASTER_*; the module optimizes manually
    (backward inside training_step after strategy.pre_backward), which must sync gradients just the same."""
    ext = tmp_path / "external"
    port = free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(TINY), "--out", str(ext), "--epochs", "1", "--manual"],
            env=clean_env(RANK=str(r), LOCAL_RANK=str(r), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port)),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=str(ROOT),
        )
        for r in range(2)
    ]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert len(glob.glob(str(ext / "started_pid*"))) == 2  # no extra process was launched
    check_same_run_as_plain(load_ranks(ext), epochs=1)


def check_same_run_as_plain(results, epochs):
    """What a plain `python train_tiny.py` run gives (checked by the first test): same shards, same weights."""
    assert [r["rank"] for r in results] == [0, 1]
    assert [r["seen"] for r in results] == expected_seen(epochs)
    assert_same_weights(results[0]["state_dict"], results[1]["state_dict"], atol=0)
    assert_same_weights(results[0]["state_dict"], reference_weights([r["seen"] for r in results], accumulate=1))


def test_under_torchrun_behaves_as_launched_plain(tmp_path):
    tr = tmp_path / "torchrun"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "--master-port",
           str(free_port()), str(TINY)]
    proc, _ = run_script(["--out", tr, "--epochs", 1], cmd=cmd)
    assert proc.returncode == 0, proc.stderr
    assert len(glob.glob(str(tr / "started_pid*"))) == 2
    check_same_run_as_plain(load_ranks(tr), epochs=1)


def test_ddp_spawn_returns_rank_zero_result_to_the_main_process(tmp_path):
    proc, _ = run_script(["--out", tmp_path, "--strategy", "ddp_spawn", "--epochs", 1])
    assert proc.returncode == 0, proc.stderr
    r0, r1 = load_ranks(tmp_path)
    assert_same_weights(r0["state_dict"], r1["state_dict"], atol=0)
    returned = glob.glob(str(tmp_path / "returned_pid*.pt"))
    assert len(returned) == 1
    got = torch.load(returned[0], weights_only=False)
    assert got["rank"] == 0
    assert_same_weights(got["state_dict"], r0["state_dict"], atol=0)
    check_same_run_as_plain([r0, r1], epochs=1)


@pytest.mark.parametrize("strategy, fail_rank", [("ddp", 0), ("ddp", 1), ("ddp_spawn", 1)])
def test_a_rank_that_raises_ends_the_run_quickly_with_its_error(tmp_path, strategy, fail_rank):
    proc, elapsed = run_script(["--out", tmp_path, "--strategy", strategy, "--fail-rank", fail_rank], timeout=60)
    assert proc.returncode != 0
    ended = time.time()
    assert f"deliberate failure in rank {fail_rank}" in proc.stderr
    # No hang: the whole run ends within seconds of the failure (start-up time is not counted).
    failed_at = float((tmp_path / "failed_at").read_text())
    assert ended - failed_at < 10, f"the run ended {ended - failed_at:.1f} s after rank {fail_rank} raised"
    assert not (tmp_path / "rank0.pt").exists() and not (tmp_path / "rank1.pt").exists()
