"""The same Lightning user script, run with `import fastlight as pl` or `import pytorch_lightning as pl`,
or (--framework strategy) trained by a hand-written loop on fastlight.strategies alone, doing what Lightning's
fit does with this module: the reference the Trainer wiring must keep.

Each rank writes <out>/<mode>_rank<global_rank>.pt: the final weights and trainer.callback_metrics.
"""
import argparse
import importlib
import os

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

parser = argparse.ArgumentParser()
parser.add_argument("--framework", choices=["fastlight", "pytorch_lightning", "strategy"], required=True)
parser.add_argument("--strategy", default="ddp")
parser.add_argument("--devices", type=int, default=2)
parser.add_argument("--mode", choices=["fit", "validate", "resume"], default="fit")
parser.add_argument("--ckpt", default=None)
parser.add_argument("--out", required=True)
args = parser.parse_args()
if args.framework == "strategy":
    import fastlight.utilities

    class _PlainModule(nn.Module):
        def log(self, *args, **kwargs):
            pass

    class pl:  # noqa: N801  (stands in for the module namespace)
        LightningModule = _PlainModule
        seed_everything = staticmethod(fastlight.utilities.seed_everything)
else:
    pl = importlib.import_module(args.framework)


def dataset(n: int, seed: int) -> TensorDataset:
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 6, generator=g), torch.randn(n, 2, generator=g))


class TinyRegressor(pl.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Linear(6, 16), nn.Tanh(), nn.Linear(16, 2))
        if args.framework != "strategy":  # a torchmetrics Metric syncs its own states over the ranks at compute()
            import torchmetrics

            self.val_mae = torchmetrics.MeanAbsoluteError()

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, sync_dist=True)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self.net(x), y)
        self.log("val_loss", loss, sync_dist=True)
        self.log("val_max", loss, sync_dist=True, reduce_fx="max")
        gathered = self.all_gather(loss)  # (world_size,) with several processes, the tensor itself with one
        self.log("val_gathered_min", gathered.min(), reduce_fx="min")
        if hasattr(self, "val_mae"):
            self.val_mae(self.net(x), y)
            self.log("val_mae", self.val_mae)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

    def train_dataloader(self):
        return DataLoader(dataset(64, 1), batch_size=8, shuffle=True)

    def val_dataloader(self):
        return DataLoader(dataset(32, 2), batch_size=8)


def fit_with_strategy(model: TinyRegressor) -> None:
    from fastlight.strategies import resolve_strategy, set_sampler_epoch

    strategy = resolve_strategy(args.strategy, "cpu", args.devices, 1)

    def run() -> None:
        strategy.setup_environment()  # re-seeds from PL_GLOBAL_SEED, as Lightning does
        strategy.setup_module(model)
        opt = model.configure_optimizers()
        loader = strategy.process_dataloader(model.train_dataloader(), stage="train")
        step = 0
        for epoch in range(2):
            set_sampler_epoch(loader, epoch)
            for batch_idx, batch in enumerate(loader):
                loss = strategy.training_step(batch, batch_idx)
                opt.zero_grad()
                loss.backward()
                opt.step()
                step += 1
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        torch.save({"metrics": {}, "state_dict": state, "global_step": step},
                   os.path.join(args.out, f"fit_rank{strategy.global_rank}.pt"))
        strategy.teardown()

    strategy.launcher.launch(run) if strategy.launcher is not None else run()


def main() -> None:
    os.makedirs(args.out, exist_ok=True)
    pl.seed_everything(42, verbose=False)
    model = TinyRegressor()
    if args.framework == "strategy":
        return fit_with_strategy(model)
    # Trainer.save_checkpoint is wired separately (wire-surface): until then fastlight fits without checkpoints
    can_save = hasattr(pl.Trainer, "save_checkpoint")
    trainer = pl.Trainer(
        strategy=args.strategy, accelerator="cpu", devices=args.devices, max_epochs=2 if args.mode != "resume" else 3,
        logger=False, enable_progress_bar=False, enable_model_summary=False,
        enable_checkpointing=args.mode == "fit" and can_save, default_root_dir=args.out, num_sanity_val_steps=0,
    )
    if args.mode == "validate":
        trainer.validate(model)
    elif args.mode == "resume":
        trainer.fit(model, ckpt_path=args.ckpt)
    else:
        trainer.fit(model)
        if can_save:
            trainer.save_checkpoint(os.path.join(args.out, "last.ckpt"))  # every rank calls it; rank 0 writes
    metrics = {k: v.detach().cpu() for k, v in trainer.callback_metrics.items()}
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"metrics": metrics, "state_dict": state, "global_step": trainer.global_step},
               os.path.join(args.out, f"{args.mode}_rank{trainer.global_rank}.pt"))


if __name__ == "__main__":
    main()
