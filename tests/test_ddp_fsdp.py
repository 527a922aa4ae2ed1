"""strategy="fsdp" (FSDP2 via fully_shard, gloo on CPU, 2 ranks) driven by a plain script: sharded training
equals one process on the concatenated data, and checkpoints (sharded directory, full file) round-trip."""
import subprocess
import sys

import pytest
import torch

from tests.test_ddp_launch import ROOT, SCRIPTS, assert_same_weights, clean_env, expected_seen
from tiny_common import TinyModule, make_data

# each test starts 2-3 Python processes (torch import each): ~7-10 s on an idle 2-core machine
pytestmark = pytest.mark.slow


def reference(seen_per_rank):
    data = make_data()
    module = TinyModule()
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    for i in range(len(seen_per_rank[0])):
        batch = data[torch.tensor([j for rank_seen in seen_per_rank for j in rank_seen[i]])]
        module.training_step(batch).backward()
        opt.step()
        opt.zero_grad()
    return module.state_dict()


def test_fsdp_trains_like_one_process_and_checkpoints_round_trip(tmp_path):
    proc = subprocess.run([sys.executable, str(SCRIPTS / "train_fsdp.py"), "--out", str(tmp_path)], env=clean_env(),
                          capture_output=True, text=True, timeout=120, cwd=str(ROOT))
    assert proc.returncode == 0, proc.stderr[-4000:]
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in range(2))
    assert [r0["seen"], r1["seen"]] == expected_seen(epochs=2)
    assert r0["shard_numel"] == r1["shard_numel"] == 8 * 6 // 2  # each rank holds half of the first weight
    assert r1["trained"] == {}  # the full state is gathered on rank 0 only
    assert_same_weights(r0["trained"], reference([r0["seen"], r1["seen"]]))
    # the sharded checkpoint reloads into a fresh module and optimizer exactly
    assert_same_weights(r0["reloaded"], r0["trained"], atol=0)
    for name, state in r0["trained_opt"][0]["state"].items():
        assert torch.equal(state["momentum_buffer"], r0["reloaded_opt"][0]["state"][name]["momentum_buffer"])
    assert r0["epoch"] == 2
    # the full-state file loads in a single process without any process group
    full = torch.load(tmp_path / "full.ckpt", map_location="cpu", weights_only=False)
    plain = TinyModule()
    plain.load_state_dict(full["state_dict"])
    assert_same_weights(plain.state_dict(), r0["trained"], atol=0)
