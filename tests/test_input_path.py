"""The batched input path (fastlight/trainer/input_path.py): a DataLoader over a TensorDataset yields the same
batches, bit for bit, as the plain DataLoader (dtypes, shapes, strides, values, sampler order, RNG consumption,
drop_last, DistributedSampler, the last partial batch, mid-epoch fast-forward), and anything else keeps the plain
iteration. Lightning parity with it on is covered by test_parity_weights.py (TensorDataset loaders throughout);
here a fit with it on and off is compared, and its use is checked."""
import numpy as np
import pytest
import torch
from torch.utils.data import (BatchSampler, DataLoader, Dataset, DistributedSampler, IterableDataset, Sampler,
                              SequentialSampler, Subset, TensorDataset, default_collate)

import fastlight as fl
from fastlight.trainer import input_path


def _data(n=37, seed=0):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(
        torch.randn(n, 3, 4, generator=g),                      # float32 features
        torch.randint(0, 10, (n,), generator=g),                # int64 labels: 0-dim samples
        torch.randint(0, 10, (n,), generator=g).to(torch.int32),
        torch.rand(n, generator=g) > 0.5,                        # bool
        torch.randn(n, 2, generator=g).to(torch.float16),
        torch.randn(n, 2, generator=g).double(),
    )


def _batches(loader, batched, seed=5):
    torch.manual_seed(seed)
    it = input_path.iterate(loader, enabled=batched)
    assert input_path.is_batched(it) == batched
    out = list(it)
    return out, torch.get_rng_state()


def _assert_same(got, ref):
    assert len(got) == len(ref)
    for b_got, b_ref in zip(got, ref):
        assert type(b_got) is type(b_ref)
        assert len(b_got) == len(b_ref)
        for a, b in zip(b_got, b_ref):
            assert a.dtype == b.dtype and a.shape == b.shape and a.stride() == b.stride()
            assert torch.equal(a, b)


LOADERS = {
    "sequential": lambda ds: DataLoader(ds, batch_size=8),
    "shuffle": lambda ds: DataLoader(ds, batch_size=8, shuffle=True),
    "shuffle_drop_last": lambda ds: DataLoader(ds, batch_size=8, shuffle=True, drop_last=True),
    "shuffle_generator": lambda ds: DataLoader(ds, batch_size=5, shuffle=True,
                                               generator=torch.Generator().manual_seed(3)),
    "batch_1": lambda ds: DataLoader(ds, batch_size=1, shuffle=True),
    "batch_larger_than_data": lambda ds: DataLoader(ds, batch_size=100),
    "distributed_rank1": lambda ds: DataLoader(ds, batch_size=4, sampler=DistributedSampler(
        ds, num_replicas=2, rank=1, shuffle=True, seed=7)),
    "distributed_drop_last": lambda ds: DataLoader(ds, batch_size=4, drop_last=True, sampler=DistributedSampler(
        ds, num_replicas=3, rank=0, shuffle=False, drop_last=True)),
    "subset": lambda ds: DataLoader(Subset(ds, [5, 3, 3, 30, 0, 12, 7, 1, 2]), batch_size=4, shuffle=True),
    "subset_tensor_indices": lambda ds: DataLoader(Subset(ds, torch.arange(36, 0, -3)), batch_size=3),
}


@pytest.mark.parametrize("case", sorted(LOADERS))
def test_batches_equal_the_plain_dataloader_bit_for_bit(case):
    ds = _data()
    ref, ref_rng = _batches(LOADERS[case](ds), batched=False)
    got, got_rng = _batches(LOADERS[case](ds), batched=True)
    _assert_same(got, ref)
    assert torch.equal(got_rng, ref_rng)  # the global RNG was consumed the same way (base seed, shuffle seed)


def test_default_collate_conversions_are_kept():
    """default_collate of a TensorDataset's sample tuples is a list (not a tuple) of stacked tensors; 0-dim
    samples become a 1-D batch of the same dtype."""
    ds = TensorDataset(torch.arange(6), torch.tensor([1.5, 2, 3, 4, 5, 6], dtype=torch.bfloat16))
    got = next(input_path.iterate(DataLoader(ds, batch_size=4)))
    ref = default_collate([ds[i] for i in range(4)])
    assert isinstance(got, list) and isinstance(ref, list)
    _assert_same([got], [ref])
    single = next(input_path.iterate(DataLoader(TensorDataset(torch.arange(5)), batch_size=2)))
    assert isinstance(single, list) and len(single) == 1 and torch.equal(single[0], torch.tensor([0, 1]))


def test_last_partial_batch_and_len():
    loader = DataLoader(_data(10), batch_size=4)
    it = input_path.iterate(loader)
    assert len(it) == 3
    sizes = [b[0].shape[0] for b in it]
    assert sizes == [4, 4, 2]


def test_mid_epoch_fast_forward_skips_sampler_indices_like_the_plain_iterator():
    """The fit loop's mid-epoch resume pulls indices from the iterator's sampler and counts them as yielded: the
    batched iterator is torch's own iterator, so the same skip gives the same next batches."""
    from fastlight.trainer.fit_loop import FitLoop

    class _Loop:  # FitLoop._fast_forward needs trainer.current_epoch only
        trainer = type("T", (), {"current_epoch": 0})()
        epoch_batch_idx = -1

    def rest(batched):
        torch.manual_seed(11)
        it = input_path.iterate(DataLoader(_data(), batch_size=4, shuffle=True), enabled=batched)
        FitLoop._fast_forward(_Loop(), it, 3)
        assert it._num_yielded == 3
        return list(it)

    _assert_same(rest(True), rest(False))


class _NumpyIndexSampler(Sampler):
    def __init__(self, n):
        self.n = n

    def __iter__(self):
        return iter(np.arange(self.n)[::-1])

    def __len__(self):
        return self.n


class _NegativeIndexSampler(Sampler):
    def __iter__(self):
        return iter([0, -1, -2, 3, 4])

    def __len__(self):
        return 5


@pytest.mark.parametrize("sampler_cls", [_NumpyIndexSampler, _NegativeIndexSampler])
def test_unusual_indices_take_the_plain_fetch_for_that_batch(sampler_cls):
    ds = _data(9)
    sampler = sampler_cls(9) if sampler_cls is _NumpyIndexSampler else sampler_cls()
    ref, _ = _batches(DataLoader(ds, batch_size=2, sampler=sampler), batched=False)
    got, _ = _batches(DataLoader(ds, batch_size=2, sampler=sampler), batched=True)
    _assert_same(got, ref)


def test_out_of_range_index_raises_like_the_plain_dataloader():
    class Bad(Sampler):
        def __iter__(self):
            return iter([0, 50])

        def __len__(self):
            return 2

    loader = DataLoader(_data(9), batch_size=2, sampler=Bad())
    with pytest.raises(IndexError):
        next(input_path.iterate(loader))


class _MyDataset(Dataset):
    def __init__(self):
        self.x = torch.arange(10.0)

    def __len__(self):
        return 10

    def __getitem__(self, i):
        return self.x[i] * 2


class _MyTensorDataset(TensorDataset):
    def __getitem__(self, i):
        return tuple(t[i] + 1 for t in self.tensors)


class _Stream(IterableDataset):
    def __iter__(self):
        return iter(torch.arange(10.0))


FALLBACKS = {
    "custom_collate": lambda: DataLoader(_data(), batch_size=4, collate_fn=lambda b: default_collate(b)),
    "custom_dataset": lambda: DataLoader(_MyDataset(), batch_size=4),
    "tensor_dataset_subclass": lambda: DataLoader(_MyTensorDataset(torch.arange(10)), batch_size=4),
    "iterable_dataset": lambda: DataLoader(_Stream(), batch_size=4),
    "no_auto_batching": lambda: DataLoader(_data(), batch_size=None),
    "custom_batch_sampler": lambda: DataLoader(_data(), batch_sampler=type(
        "MyBatchSampler", (BatchSampler,), {})(SequentialSampler(range(37)), 4, False)),
    "non_contiguous": lambda: DataLoader(TensorDataset(torch.randn(4, 10).t()), batch_size=3),
    "requires_grad": lambda: DataLoader(TensorDataset(torch.randn(10, 2, requires_grad=True)), batch_size=3),
    "zero_dim_tensor_dataset": lambda: DataLoader(Subset(_data(), [-1, 2]), batch_size=2),
}


@pytest.mark.parametrize("case", sorted(FALLBACKS))
def test_anything_else_keeps_the_plain_iteration(case):
    torch.manual_seed(0)
    it = input_path.iterate(FALLBACKS[case]())
    assert not input_path.is_batched(it)
    got = list(it)
    torch.manual_seed(0)
    ref = list(iter(FALLBACKS[case]()))
    assert len(got) == len(ref)
    for a, b in zip(got, ref):
        a, b = (a if isinstance(a, (list, tuple)) else [a]), (b if isinstance(b, (list, tuple)) else [b])
        for x, y in zip(a, b):
            assert torch.equal(x, y)


def test_env_variable_turns_it_off(monkeypatch):
    monkeypatch.setenv(input_path.ENV_FLAG, "0")
    assert not input_path.is_batched(input_path.iterate(DataLoader(_data(), batch_size=4)))
    monkeypatch.setenv(input_path.ENV_FLAG, "1")
    assert input_path.is_batched(input_path.iterate(DataLoader(_data(), batch_size=4)))


# ------------------------------------------------------------------------------------------------ in a fit
def _module_class():
    class M(fl.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(12, 8), torch.nn.Dropout(0.3), torch.nn.Linear(8, 10))
            self.seen = []

        def training_step(self, batch, batch_idx):
            x, y = batch[0], batch[1]
            self.seen.append((type(batch).__name__, x.dtype, y.dtype, tuple(x.shape)))
            self.batched = input_path.is_batched(self.trainer.fit_loop._iterator)
            loss = torch.nn.functional.cross_entropy(self.net(x.flatten(1)), y)
            self.log("loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

    return M


@pytest.mark.parametrize("flag", [True, False])
def test_fit_with_and_without_the_batched_input_gives_the_same_weights(flag, tmp_path):
    def fit(batched):
        torch.manual_seed(3)
        model = _module_class()()
        trainer = fl.Trainer(accelerator="cpu", max_epochs=2, logger=False, enable_progress_bar=False,
                             enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path),
                             fused=flag, batched_input=batched)
        trainer.fit(model, DataLoader(_data(), batch_size=8, shuffle=True))
        return model, torch.get_rng_state()

    on, rng_on = fit(True)
    off, rng_off = fit(False)
    assert on.batched and not off.batched
    assert on.seen == off.seen
    assert on.seen[-1][3][0] == 37 % 8  # the last partial batch
    assert torch.equal(rng_on, rng_off)
    for a, b in zip(on.state_dict().values(), off.state_dict().values()):
        assert torch.equal(a, b)


def test_batched_input_flag_is_validated():
    with pytest.raises(ValueError, match="batched_input"):
        fl.Trainer(accelerator="cpu", batched_input="yes")


def test_lightning_parity_with_the_batched_input_in_use(tmp_path):
    """Same user code under pytorch_lightning and fastlight (fused=False): bit-equal weights and RNG state, with the
    batched fetch in use for the training and validation loaders (shuffle, dropout, a last partial batch)."""
    pl_ref = pytest.importorskip("pytorch_lightning")
    from _parity_helpers import build, quiet_warnings, trainer_kwargs

    quiet_warnings()
    used = []

    class Probe(fl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            used.append(input_path.is_batched(trainer.fit_loop._iterator))

    def run(pl, **extra):
        torch.manual_seed(42)
        model = build(pl)(dropout=0.3, n_train=45, batch_size=8, optimizer="adam", lr=0.01, scheduler="onecycle")
        trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=3, num_sanity_val_steps=2), **extra)
        trainer.fit(model)
        return model, torch.get_rng_state()

    ref, ref_rng = run(pl_ref)
    got, got_rng = run(fl, fused=False, callbacks=[Probe()])
    assert used and all(used)
    assert torch.equal(ref_rng, got_rng)
    for (k, a), (_, b) in zip(ref.state_dict().items(), got.state_dict().items()):
        assert torch.equal(a, b), k
