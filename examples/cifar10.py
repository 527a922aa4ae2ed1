"""The classic Lightning example with one changed import: ResNet-18 on CIFAR-10, Adam 1e-3, batch 16.

    python examples/cifar10.py --fast-dev-run
    python examples/cifar10.py --max-epochs 1 --limit-batches 5
    python examples/cifar10.py --data-dir ~/data --max-epochs 10 --limit-batches 0   # real CIFAR-10, all batches
    python examples/cifar10.py --devices 2 --accelerator cpu --strategy ddp --limit-batches 5   # 2 processes (DDP)
    torchrun --nproc-per-node 4 examples/cifar10.py --devices 4 --accelerator gpu                # 4 GPUs

Uses the real CIFAR-10 when torchvision's layout is found under --data-dir (nothing is downloaded unless
--download is given); otherwise an embedded CIFAR-shaped stand-in (torchvision FakeData, 3x32x32, 10 classes)
so that it runs offline.
"""
import argparse
import os
import sys
import time

import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # run from a checkout

import fastlight as pl  # noqa: E402  (the only line that differs from the Lightning version)


def create_model() -> nn.Module:
    import torchvision

    model = torchvision.models.resnet18(weights=None, num_classes=10)
    # CIFAR images are 32x32: a 3x3 stem without the max-pool, as in Lightning's CIFAR-10 baseline
    model.conv1 = nn.Conv2d(3, 64, kernel_size=3, stride=1, padding=1, bias=False)
    model.maxpool = nn.Identity()
    return model


class LitResnet(pl.LightningModule):
    def __init__(self, lr: float = 1e-3, batch_size: int = 16):
        super().__init__()
        self.save_hyperparameters()
        self.model = create_model()

    def forward(self, x):
        return self.model(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = F.cross_entropy(self(x), y)
        self.log("train_loss", loss, prog_bar=True)
        return loss

    def evaluate(self, batch, stage):
        x, y = batch
        logits = self(x)
        loss = F.cross_entropy(logits, y)
        acc = (logits.argmax(dim=1) == y).float().mean()
        self.log(f"{stage}_loss", loss, prog_bar=True)
        self.log(f"{stage}_acc", acc, prog_bar=True)

    def validation_step(self, batch, batch_idx):
        self.evaluate(batch, "val")

    def test_step(self, batch, batch_idx):
        self.evaluate(batch, "test")

    def configure_optimizers(self):
        return torch.optim.Adam(self.parameters(), lr=self.hparams.lr)


class CIFAR10Data(pl.LightningDataModule):
    def __init__(self, data_dir: str, batch_size: int = 16, num_workers: int = 0, download: bool = False,
                 fake_train: int = 2048, fake_val: int = 512):
        super().__init__()
        self.data_dir, self.batch_size, self.num_workers, self.download = data_dir, batch_size, num_workers, download
        self.fake_train, self.fake_val = fake_train, fake_val
        self.source = None

    def _real_available(self) -> bool:
        return os.path.isdir(os.path.join(self.data_dir, "cifar-10-batches-py"))

    def prepare_data(self):
        if self.download and not self._real_available():
            import torchvision

            torchvision.datasets.CIFAR10(self.data_dir, train=True, download=True)
            torchvision.datasets.CIFAR10(self.data_dir, train=False, download=True)

    def setup(self, stage):
        import torchvision
        import torchvision.transforms as T

        normalize = T.Normalize((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616))
        if self._real_available():
            self.source = f"CIFAR-10 from {self.data_dir}"
            train_tf = T.Compose([T.RandomCrop(32, padding=4), T.RandomHorizontalFlip(), T.ToTensor(), normalize])
            test_tf = T.Compose([T.ToTensor(), normalize])
            self.train_set = torchvision.datasets.CIFAR10(self.data_dir, train=True, transform=train_tf)
            self.val_set = torchvision.datasets.CIFAR10(self.data_dir, train=False, transform=test_tf)
        else:
            self.source = "embedded CIFAR-shaped stand-in (torchvision FakeData; no real CIFAR-10 under --data-dir)"
            tf = T.Compose([T.ToTensor(), normalize])
            self.train_set = torchvision.datasets.FakeData(self.fake_train, (3, 32, 32), 10, transform=tf,
                                                           random_offset=0)
            self.val_set = torchvision.datasets.FakeData(self.fake_val, (3, 32, 32), 10, transform=tf,
                                                         random_offset=1_000_000)

    def train_dataloader(self):
        return DataLoader(self.train_set, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          drop_last=True)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.batch_size, num_workers=self.num_workers)

    def test_dataloader(self):
        return self.val_dataloader()


class Throughput(pl.Callback):
    """Counts training samples and the time spent in training batches (start-up and validation left out)."""

    def __init__(self):
        self.samples, self.seconds, self.last_loss, self._t = 0, 0.0, None, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self._t = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.seconds += time.perf_counter() - self._t
        self.samples += batch[0].shape[0]
        self.last_loss = outputs["loss"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=os.path.join(os.path.expanduser("~"), "data"))
    p.add_argument("--download", action="store_true", help="download CIFAR-10 into --data-dir if missing")
    p.add_argument("--max-epochs", type=int, default=1)
    p.add_argument("--limit-batches", type=float, default=0,
                   help="batches per epoch for train and val (0 = all; a fraction < 1 = that share)")
    p.add_argument("--precision", default="32-true")
    p.add_argument("--fast-dev-run", action="store_true", help="one train and one val batch, to check it runs")
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--num-workers", type=int, default=0)
    p.add_argument("--accelerator", default="auto")
    p.add_argument("--devices", default="1", help="devices (processes) per node: a count, or GPU ids like '0,1'")
    p.add_argument("--strategy", default="auto", help="auto, ddp, ddp_spawn, fsdp, ... (see docs/distributed.md)")
    p.add_argument("--num-nodes", type=int, default=1)
    p.add_argument("--default-root-dir", default="lightning_logs_cifar10")
    p.add_argument("--seed", type=int, default=42)
    args = p.parse_args(argv)

    pl.seed_everything(args.seed)
    limit = None if args.limit_batches == 0 else (int(args.limit_batches) if args.limit_batches >= 1
                                                   else args.limit_batches)
    dm = CIFAR10Data(args.data_dir, args.batch_size, args.num_workers, args.download)
    model = LitResnet(lr=1e-3, batch_size=args.batch_size)
    throughput = Throughput()
    trainer = pl.Trainer(
        max_epochs=args.max_epochs, accelerator=args.accelerator, devices=args.devices, strategy=args.strategy,
        num_nodes=args.num_nodes, precision=args.precision,
        limit_train_batches=limit, limit_val_batches=limit, fast_dev_run=args.fast_dev_run,
        default_root_dir=args.default_root_dir, callbacks=[throughput], log_every_n_steps=10,
    )
    trainer.fit(model, datamodule=dm)
    if not trainer.is_global_zero:  # with several processes, rank 0 reports
        return

    elapsed = throughput.seconds
    final_loss = float(throughput.last_loss) if throughput.last_loss is not None else float("nan")
    val = {k: round(float(v), 4) for k, v in trainer.callback_metrics.items() if k.startswith("val_")}
    ckpt = trainer.checkpoint_callback
    print()
    print("Summary")
    print(f"  data:          {dm.source}")
    print(f"  device:        {trainer.root_device}, precision {trainer.precision}, {trainer.world_size} process(es)")
    print(f"  steps:         {trainer.global_step} in {trainer.current_epoch} epoch(s), {throughput.samples} samples")
    print(f"  throughput:    {throughput.samples / elapsed:.1f} samples/s" if elapsed > 0 else "  throughput: n/a")
    print(f"  final loss:    {final_loss:.4f}")
    print(f"  validation:    {val}")
    print(f"  logs:          {trainer.log_dir if trainer.loggers else 'none (no logger configured)'}")
    print(f"  checkpoints:   {getattr(ckpt, 'dirpath', None) or 'none (checkpointing not active)'}")


if __name__ == "__main__":
    main()
