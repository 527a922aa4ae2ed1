"""A plain training script driving fastlight.strategies directly (no Trainer), for the DDP tests.

Module-level code runs in every rank (the re-exec launcher runs this file again per local rank). Each rank
writes <out>/rank<global_rank>.pt with its final weights, the sample indices of each step, and collective
results; rank 0's run() return value is written by the launching process as <out>/returned.pt.
"""
import argparse
import os
import time

import torch
from torch.utils.data import DataLoader

from fastlight.strategies import resolve_strategy, set_sampler_epoch
from tiny_common import TinyModule, make_data

parser = argparse.ArgumentParser()
parser.add_argument("--strategy", default="ddp")
parser.add_argument("--devices", type=int, default=2)
parser.add_argument("--out", required=True)
parser.add_argument("--epochs", type=int, default=2)
parser.add_argument("--accumulate", type=int, default=1)
parser.add_argument("--fail-rank", type=int, default=-1)
parser.add_argument("--fail-at-step", type=int, default=1)
parser.add_argument("--manual", action="store_true", help="manual optimization inside training_step")
args = parser.parse_args()

# Every rank records that module-level code ran here (the test counts these files).
os.makedirs(args.out, exist_ok=True)
with open(os.path.join(args.out, f"started_pid{os.getpid()}"), "w") as f:
    f.write(os.environ.get("LOCAL_RANK", "unset"))

class ManualTinyModule(TinyModule):
    """Manual optimization: backward and step inside training_step, as LightningModule.manual_backward does."""

    automatic_optimization = False

    def training_step(self, batch):
        loss = super().training_step(batch)
        self.strategy.pre_backward(loss)  # what the Trainer's manual_backward calls before backward
        loss.backward()
        self.opt.step()
        self.opt.zero_grad()
        return loss.detach()


def run(strategy):
    strategy.setup_environment()
    rank = strategy.global_rank
    module = ManualTinyModule() if args.manual else TinyModule()
    strategy.setup_module(module)
    opt = torch.optim.SGD(module.parameters(), lr=0.1)
    module.strategy, module.opt = strategy, opt
    loader = strategy.process_dataloader(DataLoader(make_data(), batch_size=4), stage="train")
    seen = []
    step = 0
    for epoch in range(args.epochs):
        set_sampler_epoch(loader, epoch)
        for i, batch in enumerate(loader):
            if rank == args.fail_rank and step == args.fail_at_step:
                with open(os.path.join(args.out, "failed_at"), "w") as f:
                    f.write(repr(time.time()))
                raise ValueError(f"deliberate failure in rank {rank} at step {step}")
            boundary = (i + 1) % args.accumulate == 0
            ctx = strategy.block_backward_sync() if not boundary else _null()
            if args.manual:
                strategy.training_step(batch)
                seen.append(batch[0].tolist())
                step += 1
                continue
            with ctx:
                loss = strategy.training_step(batch) / args.accumulate
                loss.backward()
            seen.append(batch[0].tolist())
            if boundary:
                opt.step()
                opt.zero_grad()
            step += 1
    collectives = {
        "reduce_mean": strategy.reduce(torch.tensor([float(rank + 1)]), reduce_op="mean"),
        "reduce_sum": strategy.reduce(torch.tensor([float(rank + 1)]), reduce_op="sum"),
        "reduce_max": strategy.reduce(torch.tensor([float(rank + 1)]), reduce_op="max"),
        "reduce_min": strategy.reduce(torch.tensor([float(rank + 1)]), reduce_op="min"),
        "reduce_int_mean": strategy.reduce(torch.tensor([rank + 2]), reduce_op="mean"),
        "gather": strategy.all_gather(torch.tensor([rank, 10 * rank])),
        "gather_dict": strategy.all_gather({"a": torch.tensor(float(rank)), "b": [rank + 0.5]}),
        "broadcast": strategy.broadcast({"from": rank}, src=1 if strategy.world_size > 1 else 0),
        "bool_all": strategy.reduce_boolean_decision(rank == 0, all=True),
        "bool_any": strategy.reduce_boolean_decision(rank == 0, all=False),
    }
    strategy.barrier("end")
    result = {
        "rank": rank,
        "world_size": strategy.world_size,
        "local_rank": strategy.local_rank,
        "state_dict": {k: v.detach().clone() for k, v in module.state_dict().items()},
        "seen": seen,
        "collectives": collectives,
        "from_rank_zero_only": __import__("fastlight.utilities", fromlist=["x"]).rank_zero_only.rank,
    }
    torch.save(result, os.path.join(args.out, f"rank{rank}.pt"))
    strategy.teardown()
    return result


class _null:
    def __enter__(self):
        return None

    def __exit__(self, *exc):
        return False


def main():
    strategy = resolve_strategy(args.strategy, "cpu", args.devices, 1)
    launcher = strategy.launcher
    returned = launcher.launch(run, strategy) if launcher is not None else run(strategy)
    if returned is not None and os.environ.get("LOCAL_RANK", "0") == "0" and "RANK" not in os.environ:
        torch.save(returned, os.path.join(args.out, f"returned_pid{os.getpid()}.pt"))


if __name__ == "__main__":
    main()
