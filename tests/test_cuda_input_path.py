"""The batched input path on a CUDA device: pinned staging buffers reused, the H2D copy on a side stream one batch
ahead, and the batches equal to the plain DataLoader's moved to the device; a fit with it on and off gives the same
weights."""
import pytest
import torch
from torch.utils.data import DataLoader, Sampler, TensorDataset

import fastlight as fl
from fastlight.trainer import input_path

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def _data(n=53):
    g = torch.Generator().manual_seed(0)
    return TensorDataset(torch.randn(n, 3, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g))


def _plain(loader, seed):
    torch.manual_seed(seed)
    return [[t.cuda() for t in b] for b in loader]


def _prefetched(loader, seed, max_batches=float("inf")):
    torch.manual_seed(seed)
    it = input_path.iterate(loader)
    assert input_path.is_batched(it)
    if max_batches == float("inf"):
        max_batches = len(loader)
    dev = input_path.epoch_iterator(it, loader, torch.device("cuda", torch.cuda.current_device()), max_batches, True)
    assert isinstance(dev, input_path.DevicePrefetcher)
    out = []
    for b in dev:
        # the consumer works on its stream while the next copy is in flight: clone to keep the values
        out.append([t.clone() for t in b])
        torch.cuda._sleep(1000)  # a busy consumer stream: the side-stream copy must still be ordered before use
    return out, dev


@pytest.mark.parametrize("shuffle,drop_last,pin", [(False, False, False), (True, False, True), (True, True, False)])
def test_prefetched_batches_equal_the_plain_loader_on_the_device(shuffle, drop_last, pin):
    mk = lambda: DataLoader(_data(), batch_size=8, shuffle=shuffle, drop_last=drop_last, pin_memory=pin)  # noqa
    ref = _plain(mk(), 4)
    got, dev = _prefetched(mk(), 4)
    assert dev._look_ahead
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        for x, y in zip(a, b):
            assert x.device.type == "cuda" and x.dtype == y.dtype and x.shape == y.shape
            assert torch.equal(x, y)
    # the staging ring holds two pinned slots, reused
    assert all(bufs is not None and all(t.is_pinned() for t in bufs) for bufs in dev._ring.buffers)


def test_prefetch_never_samples_past_the_batches_the_loop_takes():
    loader = DataLoader(_data(), batch_size=8, shuffle=True)
    torch.manual_seed(1)
    it = input_path.iterate(loader)
    dev = input_path.epoch_iterator(it, loader, torch.device("cuda"), 3, True)
    assert len(list(dev)) == 3
    assert it._num_yielded == 3


def test_unknown_sampler_is_not_read_ahead():
    class Mine(Sampler):
        def __iter__(self):
            return iter(range(20))

        def __len__(self):
            return 20

    loader = DataLoader(_data(), batch_size=8, sampler=Mine())
    it = input_path.iterate(loader)
    dev = input_path.epoch_iterator(it, loader, torch.device("cuda"), len(loader), True)
    assert not dev._look_ahead
    assert it._num_yielded == 0
    first = next(dev)
    assert it._num_yielded == 1
    assert torch.equal(first[0].cpu(), _data()[0:8][0])


@pytest.mark.parametrize("precision", ["32-true", "bf16-mixed"])
def test_fit_on_cuda_with_and_without_the_input_path_gives_the_same_weights(precision, tmp_path):
    class M(fl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(192, 16), torch.nn.ReLU(),
                                           torch.nn.Linear(16, 10))

        def training_step(self, batch, batch_idx):
            x, y = batch
            assert x.is_cuda and y.is_cuda
            loss = torch.nn.functional.cross_entropy(self.net(x), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.AdamW(self.parameters(), lr=1e-2)

    def fit(batched):
        torch.manual_seed(3)
        model = M()
        trainer = fl.Trainer(accelerator="cuda", devices=1, max_epochs=2, precision=precision, logger=False,
                             enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False,
                             default_root_dir=str(tmp_path), batched_input=batched)
        trainer.fit(model, DataLoader(_data(), batch_size=8, shuffle=True, pin_memory=True))
        return model

    on, off = fit(True), fit(False)
    for a, b in zip(on.state_dict().values(), off.state_dict().values()):
        assert torch.equal(a, b)
