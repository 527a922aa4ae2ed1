"""Plain script on fastlight.strategies with strategy="fsdp" (FSDP2, gloo on CPU, 2 ranks).

Trains TinyModule (each Linear its own unit) with SGD+momentum, then: writes the full state (gathered to rank 0)
as one file, writes a sharded checkpoint directory, reloads it into a fresh sharded module and optimizer, and
records whether the reloaded state equals the trained one.
"""
import argparse
import os

import torch
from torch import nn
from torch.utils.data import DataLoader

from fastlight.strategies import FSDPStrategy, resolve_strategy, set_sampler_epoch
from tiny_common import TinyModule, make_data

parser = argparse.ArgumentParser()
parser.add_argument("--out", required=True)
args = parser.parse_args()
os.makedirs(args.out, exist_ok=True)


def full_state(strategy):
    strategy.state_dict_type = "full"
    try:
        return strategy.module_state_dict(), [strategy.optimizer_state(o) for o in strategy._opts]
    finally:
        strategy.state_dict_type = "sharded"


def run(strategy: FSDPStrategy):
    strategy.setup_environment()
    module = TinyModule()
    strategy.setup_module(module)
    opt = torch.optim.SGD(module.parameters(), lr=0.1, momentum=0.9)
    strategy._opts = [opt]
    loader = strategy.process_dataloader(DataLoader(make_data(), batch_size=4), stage="train")
    seen = []
    for epoch in range(2):
        set_sampler_epoch(loader, epoch)
        for batch in loader:
            loss = strategy.training_step(batch)
            loss.backward()
            opt.step()
            opt.zero_grad()
            seen.append(batch[0].tolist())
    trained_full, trained_opt_full = full_state(strategy)
    # one file from rank 0 with the full state: loadable without any process group
    strategy.state_dict_type = "full"
    strategy.save_checkpoint({"state_dict": trained_full, "epoch": 2}, os.path.join(args.out, "full.ckpt"))
    strategy.state_dict_type = "sharded"
    # sharded directory, every rank its shard
    ckpt_dir = os.path.join(args.out, "sharded.ckpt")
    strategy.save_checkpoint(
        {"state_dict": strategy.module_state_dict(), "optimizer_states": [strategy.optimizer_state(opt)], "epoch": 2},
        ckpt_dir,
    )
    # reload into a fresh module (different init) and optimizer
    fresh = TinyModule()
    with torch.no_grad():
        for p in fresh.parameters():
            p.add_(1.0)
    strategy.setup_module(fresh)
    opt2 = torch.optim.SGD(fresh.parameters(), lr=0.1, momentum=0.9)
    # one step with zero gradients creates the momentum buffers the sharded optimizer state is loaded into
    for p in fresh.parameters():
        p.grad = torch.zeros_like(p)
    opt2.step()
    opt2.zero_grad()
    ckpt = strategy.load_checkpoint(ckpt_dir, optimizers=[opt2])
    strategy.load_module_state_dict(ckpt["state_dict"])
    strategy.load_optimizer_state_dict(opt2, ckpt["optimizer_states"][0])
    strategy._opts = [opt2]
    reloaded_full, reloaded_opt_full = full_state(strategy)
    torch.save(
        {
            "rank": strategy.global_rank,
            "seen": seen,
            "trained": trained_full,
            "reloaded": reloaded_full,
            "trained_opt": trained_opt_full,
            "reloaded_opt": reloaded_opt_full,
            "epoch": ckpt["epoch"],
            "shard_numel": module.net[0].weight.to_local().numel(),
        },
        os.path.join(args.out, f"rank{strategy.global_rank}.pt"),
    )


def main():
    strategy = resolve_strategy("fsdp", "cpu", 2, 1)
    strategy.auto_wrap_policy = {nn.Linear}
    strategy.launcher.launch(run, strategy)


if __name__ == "__main__":
    main()
