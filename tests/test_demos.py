"""fastlight.demos side by side with pytorch_lightning.demos: the same names, shapes, data, step outputs and trained
weights (fused=False); WikiText2 and MNIST work offline (local files, or a synthetic stand-in that says so)."""
import os
import socket
import struct
import warnings

import pytest
import torch
from torch.utils.data import DataLoader

import fastlight
import pytorch_lightning
from fastlight import demos
from fastlight.demos import boring_classes, lstm, mnist_datamodule, transformer
from pytorch_lightning import demos as pl_demos
from pytorch_lightning.demos import boring_classes as pl_boring
from pytorch_lightning.demos import lstm as pl_lstm
from pytorch_lightning.demos import mnist_datamodule as pl_mnist
from pytorch_lightning.demos import transformer as pl_transformer


@pytest.fixture(autouse=True)
def no_network(monkeypatch):
    """Any attempt to reach the network fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("a demo tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _fit(pl, model, tmp_path, datamodule=None, train_dataloaders=None, **kwargs):
    trainer_kwargs = dict(max_epochs=2, limit_train_batches=8, limit_val_batches=2, enable_progress_bar=False,
                          enable_model_summary=False, logger=False, enable_checkpointing=False,
                          default_root_dir=str(tmp_path))
    trainer_kwargs.update(kwargs)
    if pl is fastlight:
        trainer_kwargs["fused"] = False
    trainer = pl.Trainer(**trainer_kwargs)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, train_dataloaders=train_dataloaders, datamodule=datamodule)
    return trainer


def _assert_same_state(a: torch.nn.Module, b: torch.nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb)
    for key in sa:
        assert sa[key].shape == sb[key].shape, key
        assert torch.equal(sa[key], sb[key]), key


# -- names ------------------------------------------------------------------------------------------------------------
def test_public_names_match_lightnings():
    assert demos.__all__ == pl_demos.__all__
    for name in pl_demos.__all__:
        assert hasattr(demos, name), name
    lightning_classes = {n for n, v in vars(pl_boring).items() if isinstance(v, type) and v.__module__ == pl_boring.__name__}
    ours = {n for n, v in vars(boring_classes).items() if isinstance(v, type)}
    assert lightning_classes <= ours
    for module, theirs in ((transformer, pl_transformer), (lstm, pl_lstm), (mnist_datamodule, pl_mnist)):
        expected = {n for n, v in vars(theirs).items() if callable(v) and getattr(v, "__module__", "") == theirs.__name__}
        assert expected <= set(vars(module)), (module.__name__, expected - set(vars(module)))


# -- datasets -----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["RandomDataset", "RandomDictDataset"])
def test_map_datasets_draw_the_same_data(name):
    torch.manual_seed(0)
    ours = getattr(boring_classes, name)(5, 7)
    torch.manual_seed(0)
    theirs = getattr(pl_boring, name)(5, 7)
    assert len(ours) == len(theirs) == 7
    for i in range(7):
        a, b = ours[i], theirs[i]
        if isinstance(a, dict):
            assert a.keys() == b.keys() == {"a", "b"} and torch.equal(a["b"], a["a"] + 2)
            a, b = a["a"], b["a"]
        assert a.shape == (5,) and torch.equal(a, b)


def test_iterable_datasets():
    plain = boring_classes.RandomIterableDataset(3, 4)
    with pytest.raises(TypeError):
        len(plain)
    torch.manual_seed(1)
    items = list(plain)
    torch.manual_seed(1)
    assert all(torch.equal(a, b) for a, b in zip(items, pl_boring.RandomIterableDataset(3, 4)))
    assert len(items) == 4 and items[0].shape == (3,)
    sized = boring_classes.RandomIterableDatasetWithLen(3, 6)
    assert len(sized) == 6 and len(list(sized)) == 6
    assert not isinstance(sized, boring_classes.RandomIterableDataset)  # as in Lightning: siblings, not subclass


# -- BoringModel & co. ------------------------------------------------------------------------------------------------------
def test_boring_model_layer_loss_and_step_outputs_equal_lightnings():
    torch.manual_seed(3)
    ours = boring_classes.BoringModel()
    torch.manual_seed(3)
    theirs = pl_boring.BoringModel()
    assert isinstance(ours.layer, torch.nn.Linear) and (ours.layer.in_features, ours.layer.out_features) == (32, 2)
    _assert_same_state(ours, theirs)
    batch = torch.randn(4, 32)
    for step, key in (("training_step", "loss"), ("validation_step", "x"), ("test_step", "y")):
        out_ours, out_theirs = getattr(ours, step)(batch, 0), getattr(theirs, step)(batch, 0)
        assert list(out_ours) == [key] and torch.equal(out_ours[key], out_theirs[key])
    labels = torch.zeros(4, 2)
    assert torch.equal(ours.loss(ours(batch), labels), theirs.loss(theirs(batch), labels))
    optimizers, schedulers = ours.configure_optimizers()
    assert type(optimizers[0]) is torch.optim.SGD and optimizers[0].defaults["lr"] == 0.1
    assert type(schedulers[0]) is torch.optim.lr_scheduler.StepLR and schedulers[0].step_size == 1
    for loader in ("train_dataloader", "val_dataloader", "test_dataloader", "predict_dataloader"):
        dataset = getattr(ours, loader)().dataset
        assert isinstance(dataset, boring_classes.RandomDataset) and len(dataset) == 64 and dataset[0].shape == (32,)


@pytest.mark.parametrize(
    "model_name, use_datamodule",
    [("BoringModel", False), ("BoringModel", True), ("ManualOptimBoringModel", False), ("DemoModel", False)],
)
def test_fit_weights_equal_lightnings_with_fused_false(tmp_path, model_name, use_datamodule):
    results = {}
    for pl, module in ((fastlight, boring_classes), (pytorch_lightning, pl_boring)):
        torch.manual_seed(7)
        model = getattr(module, model_name)()
        datamodule = module.BoringDataModule() if use_datamodule else None
        loader = DataLoader(module.RandomDataset(32, 64), batch_size=2) if model_name == "DemoModel" else None
        trainer = _fit(pl, model, tmp_path / pl.__name__, datamodule=datamodule, train_dataloaders=loader)
        results[pl.__name__] = (model, trainer.global_step, trainer.callback_metrics)
    (ours, steps, metrics), (theirs, their_steps, their_metrics) = results["fastlight"], results["pytorch_lightning"]
    assert steps == their_steps == 16
    _assert_same_state(ours, theirs)
    assert metrics.keys() == their_metrics.keys()


def test_boring_datamodule_splits_equal_lightnings():
    torch.manual_seed(11)
    ours = boring_classes.BoringDataModule()
    torch.manual_seed(11)
    theirs = pl_boring.BoringDataModule()
    for stage, attrs in (("fit", ["random_train", "random_val"]), ("validate", ["random_val"]),
                         ("test", ["random_test"]), ("predict", ["random_predict"])):
        ours.setup(stage)
        theirs.setup(stage)
        for attr in attrs:
            a, b = getattr(ours, attr), getattr(theirs, attr)
            assert list(a.indices) == list(b.indices) and len(a) == 64
            assert torch.equal(torch.stack(list(a)), torch.stack(list(b)))
    assert len(ours.train_dataloader()) == 64 and len(ours.predict_dataloader()) == 64


def test_no_len_and_iterable_datamodules():
    no_len = boring_classes.BoringDataModuleNoLen()
    no_len.setup("fit")
    assert sum(1 for _ in no_len.train_dataloader()) == 512 and sum(1 for _ in no_len.val_dataloader()) == 128
    iterable = boring_classes.IterableBoringDataModule()
    iterable.setup("test")
    loaders = iterable.test_dataloader()
    assert isinstance(loaders, list) and len(loaders) == 2
    assert isinstance(loaders[1].dataset, boring_classes.RandomIterableDataset)
    assert [sum(1 for _ in loader) for loader in loaders] == [64, 64]


def test_net_matches_lightnings():
    torch.manual_seed(0)
    ours = boring_classes.Net()
    torch.manual_seed(0)
    theirs = pl_boring.Net()
    _assert_same_state(ours, theirs)
    ours.eval(), theirs.eval()
    x = torch.randn(2, 1, 28, 28)
    out = ours(x)
    assert out.shape == (2, 10) and torch.equal(out, theirs(x))
    assert torch.allclose(out.exp().sum(dim=1), torch.ones(2))


# -- Transformer and WikiText2 --------------------------------------------------------------------------------------------
def test_transformer_state_and_outputs_equal_lightnings():
    torch.manual_seed(0)
    ours = transformer.Transformer(vocab_size=50, ninp=16, nhead=2, nhid=32, nlayers=1)
    torch.manual_seed(0)
    theirs = pl_transformer.Transformer(vocab_size=50, ninp=16, nhead=2, nhid=32, nlayers=1)
    _assert_same_state(ours, theirs)
    ours.eval(), theirs.eval()
    inputs, target = torch.randint(0, 50, (3, 7)), torch.randint(0, 50, (3, 7))
    out = ours(inputs, target)
    assert out.shape == (3 * 7, 50)
    assert torch.allclose(out, theirs(inputs, target), atol=1e-6, rtol=0)
    mask = ours.generate_square_subsequent_mask(4)
    assert torch.equal(mask, theirs.generate_square_subsequent_mask(4))


def _write_corpus(path):
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [" = Heading = ", " the cat sat on the mat . ", "", " a dog ran to the cat and the mat . "] * 30
    path.write_text("\n".join(lines) + "\n", encoding="utf8")


def test_wikitext2_reads_a_local_file_as_lightnings_does(tmp_path):
    _write_corpus(tmp_path / "wikitext-2.txt")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a real file: no synthetic warning
        ours = transformer.WikiText2(data_dir=tmp_path, block_size=5)
    theirs = pl_transformer.WikiText2(data_dir=tmp_path, block_size=5, download=False)
    assert not ours.synthetic
    assert torch.equal(ours.data, theirs.data) and ours.dictionary.idx2word == theirs.dictionary.idx2word
    assert ours.vocab_size == theirs.vocab_size and len(ours) == len(theirs)
    for i in (0, 3, len(ours) - 1):
        assert all(torch.equal(a, b) for a, b in zip(ours[i], theirs[i]))
    inputs, target = ours[2]
    assert torch.equal(inputs[1:], target[:-1])
    assert str(tmp_path) in str(ours.path) and transformer.WikiText2(data_dir=str(tmp_path)).vocab_size == ours.vocab_size


def test_wikitext2_without_the_file_uses_a_synthetic_corpus_and_says_so(tmp_path):
    with pytest.warns(UserWarning, match="SYNTHETIC corpus.*never downloads"):
        data = transformer.WikiText2(data_dir=tmp_path / "missing")
    assert data.synthetic and len(data) > 1000 and 100 < data.vocab_size < 5000
    assert not (tmp_path / "missing").exists()  # nothing written
    torch.manual_seed(0)
    expected = torch.rand(1)
    torch.manual_seed(0)
    with pytest.warns(UserWarning):
        again = transformer.WikiText2(data_dir=tmp_path / "missing")
    assert torch.equal(again.data, data.data)  # deterministic
    assert torch.equal(torch.rand(1), expected)  # and the global RNG untouched
    with pytest.raises(FileNotFoundError, match="wikitext-2.txt not found and download=False"):
        transformer.WikiText2(data_dir=tmp_path / "missing", download=False)
    with pytest.raises(RuntimeError, match="does not download"):
        transformer.WikiText2.download(tmp_path / "missing" / "wikitext-2.txt")


def test_lightning_transformer_fits_like_lightnings(tmp_path):
    _write_corpus(tmp_path / "data" / "wikitext-2.txt")
    results = {}
    for pl, module in ((fastlight, transformer), (pytorch_lightning, pl_transformer)):
        dataset = module.WikiText2(data_dir=tmp_path / "data", block_size=8, download=False)

        class Small(module.LightningTransformer):
            def prepare_data(self):
                pass

            def train_dataloader(self):
                return DataLoader(dataset, batch_size=4)

        torch.manual_seed(0)
        model = Small(vocab_size=dataset.vocab_size)
        _fit(pl, model, tmp_path / pl.__name__, max_epochs=1, limit_train_batches=3)
        results[pl.__name__] = model
    ours, theirs = results["fastlight"], results["pytorch_lightning"]
    for (key, a), b in zip(ours.state_dict().items(), theirs.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6, rtol=0), key


def test_lstm_and_sequence_sampler_match_lightnings():
    torch.manual_seed(0)
    ours = lstm.SimpleLSTM(vocab_size=30, ninp=8, nhid=8, nlayers=2)
    torch.manual_seed(0)
    theirs = pl_lstm.SimpleLSTM(vocab_size=30, ninp=8, nhid=8, nlayers=2)
    _assert_same_state(ours, theirs)
    ours.eval(), theirs.eval()
    x = torch.randint(0, 30, (3, 5))
    (out, (h, c)), (out2, (h2, c2)) = ours(x, ours.init_hidden(3)), theirs(x, theirs.init_hidden(3))
    assert out.shape == (15, 30) and h.shape == (2, 3, 8)
    assert torch.allclose(out, out2) and torch.allclose(h, h2) and torch.allclose(c, c2)
    dataset = list(range(23))
    assert list(lstm.SequenceSampler(dataset, 4)) == list(pl_lstm.SequenceSampler(dataset, 4))
    assert len(lstm.SequenceSampler(dataset, 4)) == 5
    assert list(lstm.SequenceSampler(dataset, 4))[0] == [0, 5, 10, 15]


# -- MNIST ------------------------------------------------------------------------------------------------------------
def test_mnist_missing_data_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTLIGHT_MNIST_SYNTHETIC", raising=False)
    dm = mnist_datamodule.MNISTDataModule(data_dir=str(tmp_path), num_workers=0)
    with pytest.raises(RuntimeError, match="MNIST not found under.*does not download.*synthetic=True"):
        dm.prepare_data()
    with pytest.raises(RuntimeError, match="Dataset not found"):
        mnist_datamodule._MNIST(str(tmp_path))


def test_mnist_datamodule_with_the_synthetic_stand_in(tmp_path):
    dm = mnist_datamodule.MNISTDataModule(data_dir=str(tmp_path), num_workers=0, batch_size=16, synthetic=True)
    assert dm.num_classes == 10 and dm.name == "mnist"
    with pytest.warns(UserWarning, match="synthetic MNIST-shaped stand-in"):
        dm.prepare_data()
        dm.setup("fit")
    assert len(dm.dataset_train) == 55000 and len(dm.dataset_val) == 5000
    images, labels = next(iter(dm.val_dataloader()))
    assert images.shape == (16, 1, 28, 28) and images.dtype == torch.float32 and 0 <= images.min() <= images.max() <= 1
    assert labels.shape == (16,) and labels.dtype == torch.int64 and labels.max() < 10
    with pytest.warns(UserWarning):
        test_loader = dm.test_dataloader()
    assert len(test_loader.dataset) == 10000 and len(test_loader) == 10000 // 16
    # deterministic, and learnable: each class is its own pattern
    first = mnist_datamodule.SyntheticMNIST(train=True)
    assert torch.equal(first.data, mnist_datamodule.SyntheticMNIST(train=True).data)
    means = torch.stack([first.data[first.targets == k][:50].float().mean(0) for k in range(10)])
    assert torch.cdist(means.flatten(1), means.flatten(1)).add(torch.eye(10) * 1e9).min() > 100


def test_mnist_synthetic_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTLIGHT_MNIST_SYNTHETIC", "1")
    with pytest.warns(UserWarning, match="SyntheticMNIST"):
        dataset = mnist_datamodule.MNIST(str(tmp_path), train=False)
    assert isinstance(dataset, mnist_datamodule.SyntheticMNIST) and len(dataset) == 10000


def test_mnist_reads_lightnings_preprocessed_files_as_lightning_does(tmp_path, monkeypatch):
    monkeypatch.delenv("FASTLIGHT_MNIST_SYNTHETIC", raising=False)
    folder = tmp_path / "MNIST" / "complete"
    folder.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for name, n in (("training.pt", 12), ("test.pt", 5)):
        torch.save((torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), torch.arange(n) % 10), folder / name)
    ours = mnist_datamodule.MNIST(str(tmp_path), train=True, download=True)
    theirs = pl_mnist._MNIST(str(tmp_path), train=True, download=False)
    assert isinstance(ours, mnist_datamodule._MNIST) and len(ours) == len(theirs) == 12
    for i in range(12):
        (a, la), (b, lb) = ours[i], theirs[i]
        assert a.shape == (1, 28, 28) and torch.equal(a, b) and la == lb


def _write_idx(path, data: torch.Tensor, magic: int):
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in data.shape)
    path.write_bytes(header + data.numpy().tobytes())


def test_mnist_reads_torchvisions_files(tmp_path, monkeypatch):
    pytest.importorskip("torchvision")
    monkeypatch.delenv("FASTLIGHT_MNIST_SYNTHETIC", raising=False)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    g = torch.Generator().manual_seed(0)
    for prefix, n in (("train", 40), ("t10k", 20)):
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", torch.randint(0, 256, (n, 28, 28), generator=g, dtype=torch.uint8), 2051)
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", (torch.arange(n) % 10).to(torch.uint8), 2049)
    dm = mnist_datamodule.MNISTDataModule(data_dir=str(tmp_path), val_split=8, num_workers=0, batch_size=4, normalize=True)
    dm.prepare_data()
    dm.setup("fit")
    assert len(dm.dataset_train) == 32 and len(dm.dataset_val) == 8
    images, labels = next(iter(dm.train_dataloader()))
    assert images.shape == (4, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert len(dm.test_dataloader().dataset) == 20
    with pytest.raises(ValueError, match="val_split=40"):
        mnist_datamodule.MNISTDataModule(data_dir=str(tmp_path), val_split=40, num_workers=0).setup("fit")


def test_demos_never_touch_the_network_even_when_asked_to_download(tmp_path):
    # the autouse fixture fails any connection; download=True paths must stay offline
    with pytest.warns(UserWarning):
        transformer.WikiText2(tmp_path, download=True)
    with pytest.raises(RuntimeError, match="does not download"):
        mnist_datamodule.MNIST(str(tmp_path), train=True, download=True)
    assert os.listdir(tmp_path) == []
