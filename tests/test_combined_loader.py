"""Several train dataloaders: fastlight.utilities.CombinedLoader against pytorch_lightning's on the same loaders (every
mode, structure, limit), and fits whose train_dataloader returns a dict / list / tuple / CombinedLoader under both
frameworks with the same seed (same steps, same batches in training_step, same RNG use, bit-identical weights).
Also: the sampler injection into each inner loader, set_epoch per inner loader, and a mid-epoch resume."""
import os

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, DistributedSampler, IterableDataset, Sampler, TensorDataset

import fastlight as fl
from fastlight.utilities import CombinedLoader
from fastlight.utilities.checkpoint_io import load_checkpoint

pl = pytest.importorskip("pytorch_lightning")
from pytorch_lightning.utilities import CombinedLoader as PLCombinedLoader  # noqa: E402

from _parity_helpers import quiet_warnings, trainer_kwargs  # noqa: E402

quiet_warnings()

MODES = ["min_size", "max_size_cycle", "max_size", "sequential"]


def _indices(n, offset=0):
    return TensorDataset(torch.arange(offset, offset + n))


def _structures():
    """name -> a function making fresh iterables (each comparison gets its own, unconsumed loaders)."""
    return {
        "dict": lambda: {"a": DataLoader(_indices(10), batch_size=4), "b": DataLoader(_indices(15, 100), batch_size=5)},
        "list": lambda: [DataLoader(_indices(6), batch_size=2), DataLoader(_indices(4, 50), batch_size=3)],
        "tuple_of_three": lambda: (DataLoader(_indices(3), batch_size=1), DataLoader(_indices(8, 10), batch_size=2),
                                   DataLoader(_indices(5, 20), batch_size=5)),
        "nested": lambda: {"a": [DataLoader(_indices(7), batch_size=2), DataLoader(_indices(3, 30), batch_size=2)],
                           "b": (DataLoader(_indices(9, 60), batch_size=4),),
                           "c": [1, 2, 3]},  # a list of numbers is one iterable, not three
        "one_element_list": lambda: [DataLoader(_indices(5), batch_size=2)],
        "single_loader": lambda: DataLoader(_indices(5), batch_size=2),
    }


def _plain(obj):
    """Tensors as lists, containers kept (dict stays dict, tuple stays tuple), to compare outputs exactly."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", obj.tolist())
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_plain(v) for v in obj)
    return obj


def _drain(cls, iterables, mode, limits=None):
    loader = cls(iterables, mode)
    if limits is not None:
        loader.limits = limits
    iter(loader)
    length = len(loader)
    return length, [_plain(out) for out in loader]


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("structure", sorted(_structures()))
def test_same_outputs_and_length_as_lightning(structure, mode):
    make = _structures()[structure]
    ours = _drain(CombinedLoader, make(), mode)
    theirs = _drain(PLCombinedLoader, make(), mode)
    assert ours == theirs
    assert ours[0] > 0 and len(ours[1]) > 0


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("limits", [1, [2, 1], [0, 3]])
def test_limits_same_as_lightning(mode, limits):
    make = _structures()["dict"]
    assert _drain(CombinedLoader, make(), mode, limits) == _drain(PLCombinedLoader, make(), mode, limits)


def test_each_iter_starts_over_and_state_properties_match_lightning():
    make = _structures()["nested"]
    ours, theirs = CombinedLoader(make(), "max_size_cycle"), PLCombinedLoader(make(), "max_size_cycle")
    first = [_plain(o) for o in ours]
    assert first == [_plain(o) for o in ours] == [_plain(o) for o in theirs]
    assert _plain(ours.sampler.keys()) == _plain(theirs.sampler.keys())
    assert [type(s) for s in ours.sampler["a"]] == [type(s) for s in theirs.sampler["a"]]
    assert ours._dataset_length() == theirs._dataset_length()
    new_b = DataLoader(_indices(2, 900), batch_size=2)
    ours.flattened = ours.flattened[:2] + [new_b] + ours.flattened[3:]
    assert ours.iterables["b"] == (new_b,)  # the structure is rebuilt around the replaced loader
    with pytest.raises(ValueError, match="got 1 iterables"):
        ours.flattened = [new_b]
    with pytest.raises(ValueError, match="got 2 limits"):
        ours.limits = [1, 2]


def test_max_size_fills_exhausted_loaders_with_none():
    loader = CombinedLoader({"a": DataLoader(_indices(2), batch_size=1), "b": DataLoader(_indices(4), batch_size=1)},
                            "max_size")
    batches = [batch for batch, _, _ in loader]
    assert [b["a"] is None for b in batches] == [False, False, True, True]
    assert [int(b["b"][0]) for b in batches] == [0, 1, 2, 3]


def test_sequential_numbers_each_loader_and_restarts_batch_idx():
    loader = CombinedLoader([DataLoader(_indices(4), batch_size=2), DataLoader(_indices(3), batch_size=1)],
                            "sequential")
    assert [(i, d) for _, i, d in loader] == [(0, 0), (1, 0), (0, 1), (1, 1), (2, 1)]
    assert len(loader) == 5


def test_bad_mode_names_the_allowed_modes():
    with pytest.raises(ValueError, match=r"Unsupported mode 'longest'.*'min_size', 'max_size_cycle', 'max_size',"
                                         r" 'sequential'"):
        CombinedLoader([[1, 2]], "longest")
    with pytest.raises(ValueError):
        PLCombinedLoader([[1, 2]], "longest")


def test_len_needs_iter_first_and_is_infinite_for_an_unsized_loader():
    class Stream(IterableDataset):
        def __iter__(self):
            return iter(range(3))

    loader = CombinedLoader([DataLoader(Stream()), DataLoader(_indices(2))], "max_size_cycle")
    with pytest.raises(RuntimeError, match="iter"):
        len(loader)
    iter(loader)
    assert loader.__len__() == float("inf")


def test_importable_where_lightning_has_it():
    import fastlight.utilities as utilities
    from fastlight.utilities.combined_loader import CombinedLoader as by_module

    assert utilities.CombinedLoader is by_module is CombinedLoader
    assert "CombinedLoader" in utilities.__all__


# ------------------------------------------------------------------------------------------------- fit parity
def _data(n, seed):
    g = torch.Generator().manual_seed(seed)
    return TensorDataset(torch.randn(n, 8, generator=g), torch.randint(0, 3, (n,), generator=g), torch.arange(n))


def _make_loaders(kind):
    a = DataLoader(_data(40, 1), batch_size=8, shuffle=True)  # 5 batches
    b = DataLoader(_data(24, 2), batch_size=8, shuffle=True)  # 3 batches: cycled (a new shuffle mid-epoch)
    if kind == "dict":
        return {"a": a, "b": b}
    if kind == "one_element_list":
        return [a]
    if kind == "tuple":
        return (b, a)
    if kind == "nested":
        return {"a": a, "rest": [b, DataLoader(_data(16, 3), batch_size=4)]}
    return kind[0](_make_loaders("dict"), kind[1])  # a user's CombinedLoader: (class, mode)


def _leaves(batch):
    if isinstance(batch, dict):
        return [x for v in batch.values() for x in _leaves(v)]
    if isinstance(batch, tuple):
        return [x for v in batch for x in _leaves(v)]
    if batch is None:  # max_size: an exhausted loader
        return []
    if isinstance(batch[0], (list, tuple, dict)):  # a list of loaders
        return [x for v in batch for x in _leaves(v)]
    return [batch]  # one loader's batch: [x, y, idx]


def _shape(batch):
    """The structure with each loader's batch as its sample indices (None for an exhausted one)."""
    if batch is None:
        return None
    if isinstance(batch, dict):
        return {k: _shape(v) for k, v in batch.items()}
    if isinstance(batch, tuple):
        return tuple(_shape(v) for v in batch)
    if isinstance(batch[0], torch.Tensor):
        return batch[2].tolist()
    return [_shape(v) for v in batch]


def build_multi(framework, kind, dropout=0.1):
    class MultiLoaderModel(framework.LightningModule):
        def __init__(self):
            super().__init__()
            torch.manual_seed(0)
            self.net = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Dropout(dropout), nn.Linear(16, 3))
            self.seen = []

        def training_step(self, batch, batch_idx):
            self.seen.append((self.current_epoch, batch_idx, _shape(batch)))
            loss = sum(nn.functional.cross_entropy(self.net(x), y) for x, y, _ in _leaves(batch))
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.9)

        def train_dataloader(self):
            return _make_loaders(kind)

    return MultiLoaderModel


def _fit_multi(framework, tmp_path, kind, **trainer_kw):
    torch.manual_seed(1234)
    if isinstance(kind, tuple):  # the user builds the CombinedLoader with their framework's class
        kind = (CombinedLoader if framework is fl else PLCombinedLoader, kind[1])
    model = build_multi(framework, kind)()
    extra = dict(fused=False) if framework is fl else {}
    trainer = framework.Trainer(**trainer_kwargs(tmp_path, **{"max_epochs": 2, **trainer_kw}), **extra)
    trainer.fit(model)
    return model, trainer, torch.get_rng_state()


FIT_CASES = {
    "dict": ("dict", {}),
    "one_element_list": ("one_element_list", {}),
    "tuple": ("tuple", {}),
    "nested": ("nested", {}),
    "dict_limit_int": ("dict", dict(limit_train_batches=2)),
    "dict_limit_fraction": ("dict", dict(limit_train_batches=0.5)),
    "dict_accumulate_max_steps": ("dict", dict(accumulate_grad_batches=2, max_steps=4)),
    "dict_overfit": ("dict", dict(overfit_batches=2)),
    "combined_min_size": ((None, "min_size"), {}),
    "combined_max_size": ((None, "max_size"), {}),
}


@pytest.mark.parametrize("case", sorted(FIT_CASES))
def test_fit_on_several_loaders_matches_lightning(case, tmp_path):
    kind, trainer_kw = FIT_CASES[case]
    ref, ref_trainer, ref_rng = _fit_multi(pl, tmp_path / "pl", kind, **trainer_kw)
    got, trainer, rng = _fit_multi(fl, tmp_path / "fl", kind, **trainer_kw)
    assert got.seen == ref.seen
    assert len(got.seen) > 0
    assert trainer.num_training_batches == ref_trainer.num_training_batches
    assert trainer.global_step == ref_trainer.global_step
    assert torch.equal(rng, ref_rng)  # loaders re-created, cycled and shuffled at the same points
    for k, v in ref.state_dict().items():
        assert torch.equal(got.state_dict()[k], v), k
    ours, theirs = trainer.train_dataloader, ref_trainer.train_dataloader
    assert type(ours) is type(theirs)
    if isinstance(theirs, dict):
        assert list(ours) == list(theirs)


def test_one_element_list_passes_the_batch_in_a_list_like_lightning(tmp_path):
    got, _, _ = _fit_multi(fl, tmp_path, "one_element_list", limit_train_batches=1, max_epochs=1)
    assert isinstance(got.seen[0][2], list) and len(got.seen[0][2]) == 1 and len(got.seen[0][2][0]) == 8


def test_fit_train_dataloaders_argument_takes_a_dict(tmp_path):
    seen = {}
    for framework in (pl, fl):
        torch.manual_seed(1234)
        model = build_multi(framework, "dict")()
        extra = dict(fused=False) if framework is fl else {}
        trainer = framework.Trainer(**trainer_kwargs(tmp_path / framework.__name__, max_epochs=1), **extra)
        trainer.fit(model, train_dataloaders=_make_loaders("dict"))
        seen[framework] = model.seen
    assert seen[fl] == seen[pl] and len(seen[fl]) == 5


def test_sequential_mode_is_refused_for_training_as_lightning_does(tmp_path):
    def run(framework, cls):
        class Model(build_multi(framework, "dict")):
            def train_dataloader(self):
                return cls(_make_loaders("dict"), "sequential")

        extra = dict(fused=False) if framework is fl else {}
        framework.Trainer(**trainer_kwargs(tmp_path, max_epochs=1), **extra).fit(Model())

    with pytest.raises(ValueError) as theirs:
        run(pl, PLCombinedLoader)
    with pytest.raises(ValueError) as ours:
        run(fl, CombinedLoader)
    # the same message but for the loop's class name (Lightning's is `_FitLoop`)
    assert str(ours.value).split("` ", 1)[1] == str(theirs.value).split("` ", 1)[1]
    assert 'does not support the `CombinedLoader(mode="sequential")` mode' in str(ours.value)


def test_distributed_sampler_goes_into_each_inner_loader():
    trainer = fl.Trainer(accelerator="cpu", devices=2, strategy="ddp", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    loaders = {"a": DataLoader(_indices(8), batch_size=2), "b": [DataLoader(_indices(6), batch_size=3), [7, 8]]}
    out = trainer._process_dataloader(loaders, "train")
    assert list(out) == ["a", "b"] and isinstance(out["b"], list) and out["b"][1] == [7, 8]
    for dl in (out["a"], out["b"][0]):
        assert isinstance(dl.sampler, DistributedSampler)
        assert dl.sampler.num_replicas == 2 and dl.sampler.rank == 0 and dl.sampler.shuffle
    combined = CombinedLoader([DataLoader(_indices(8), batch_size=2)], "min_size")
    assert trainer._process_dataloader(combined, "train") is combined
    assert isinstance(combined.flattened[0].sampler, DistributedSampler)
    single = fl.Trainer(accelerator="cpu", devices=1, logger=False, enable_checkpointing=False)
    assert single._process_dataloader(loaders, "train") is loaders  # nothing to inject: the user's object back


# ------------------------------------------------------------------------------------------------- resume
class EpochSeededSampler(Sampler):
    """Shuffles by the epoch alone (set_epoch), so an uninterrupted and a resumed run draw the same batches."""

    def __init__(self, n, salt):
        self.n, self.salt, self.epoch, self.epochs_set = n, salt, 0, []

    def set_epoch(self, epoch):
        self.epoch = epoch
        self.epochs_set.append(epoch)

    def __iter__(self):
        g = torch.Generator().manual_seed(1000 * self.salt + self.epoch)
        return iter(torch.randperm(self.n, generator=g).tolist())

    def __len__(self):
        return self.n


def _seeded_loaders():
    return {"a": DataLoader(_data(40, 1), batch_size=8, sampler=EpochSeededSampler(40, 1)),
            "b": DataLoader(_data(24, 2), batch_size=8, sampler=EpochSeededSampler(24, 2))}


def _fit_seeded(root, max_epochs, callbacks=(), ckpt_path=None):
    fl.seed_everything(0, verbose=False)
    model = build_multi(fl, "dict", dropout=0.0)()  # no global RNG use: the resumed run can be exact
    loaders = _seeded_loaders()
    trainer = fl.Trainer(max_epochs=max_epochs, callbacks=list(callbacks), logger=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=str(root), fused=False)
    trainer.fit(model, train_dataloaders=loaders, ckpt_path=ckpt_path)
    return trainer, model, loaders


def test_set_epoch_reaches_every_inner_loader(tmp_path):
    _, _, loaders = _fit_seeded(tmp_path, 3, [])
    assert loaders["a"].sampler.epochs_set == loaders["b"].sampler.epochs_set == [0, 1, 2]


def test_mid_epoch_resume_skips_the_trained_combined_batches(tmp_path):
    """A checkpoint after batch 3 of epoch 1 (loader "b" already cycled once in that epoch): the resumed run goes on
    with batch 3 of epoch 1 and ends on the uninterrupted run's weights."""
    full_trainer, full, _ = _fit_seeded(tmp_path / "full", 3)
    ck = fl.callbacks.ModelCheckpoint(dirpath=tmp_path / "steps", every_n_train_steps=8, save_top_k=-1)
    _fit_seeded(tmp_path / "a", 3, [ck])
    path = tmp_path / "steps" / "epoch=1-step=8.ckpt"
    assert load_checkpoint(path)["global_step"] == 8
    resumed_trainer, resumed, _ = _fit_seeded(tmp_path / "b", 3, ckpt_path=str(path))
    assert resumed.seen == full.seen[8:]
    assert resumed.seen[0][:2] == (1, 3)
    assert resumed_trainer.global_step == full_trainer.global_step == 15
    for k, v in full.state_dict().items():
        assert torch.equal(resumed.state_dict()[k], v), k
