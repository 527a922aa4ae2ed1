"""Public names a Lightning 2.6 user reaches for: grad_norm, move_data_to_device, toggled_optimizer, the checkpoint
hparams keys, to_torchscript, to_onnx, remove_ignored_hparams, LightningDataModule.from_datasets.
Where behaviour is observable, the same user code runs under pytorch_lightning and fastlight."""
import dataclasses
import importlib.util
import os
import warnings
from collections import OrderedDict, defaultdict, namedtuple

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset, RandomSampler, SequentialSampler, TensorDataset

import fastlight
from fastlight.utilities import grad_norm, move_data_to_device

pl = pytest.importorskip("pytorch_lightning")

QUIET = dict(logger=False, enable_progress_bar=False, enable_model_summary=False, enable_checkpointing=False)


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def _as_plain(d):
    return {k: v.item() for k, v in d.items()}


# ---------------------------------------------------------------------------------------------------- grad_norm
def _net_with_grads():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2))
    net[0].bias.requires_grad_(False)  # no gradient: left out
    net(torch.randn(5, 4)).pow(2).sum().backward()
    return net


@pytest.mark.parametrize("norm_type", [2, 1.0, "2", 3.5, "inf", float("inf")])
def test_grad_norm_gives_lightnings_keys_and_values(norm_type):
    from pytorch_lightning.utilities import grad_norm as pl_grad_norm

    net = _net_with_grads()
    ours, theirs = grad_norm(net, norm_type), pl_grad_norm(net, norm_type)
    assert list(ours) == list(theirs)
    assert "grad_{}_norm/0.bias".format(float(norm_type)) not in ours
    for k in theirs:
        torch.testing.assert_close(ours[k], theirs[k], rtol=0, atol=0)
    assert ours[f"grad_{float(norm_type)}_norm_total"].dtype == theirs[f"grad_{float(norm_type)}_norm_total"].dtype


def test_grad_norm_group_separator_and_no_gradients():
    net = _net_with_grads()
    assert all("_norm." in k or k.endswith("_total") for k in grad_norm(net, 2, group_separator="."))
    assert grad_norm(nn.Linear(2, 2), 2) == {}  # nothing has a gradient yet: no total either


@pytest.mark.parametrize("bad", [0, -1, "abc", None, float("nan")])
def test_grad_norm_refuses_a_norm_type_that_is_not_positive(bad):
    with pytest.raises(ValueError, match="norm_type"):
        grad_norm(_net_with_grads(), bad)


def test_grad_norm_logged_from_on_before_optimizer_step_matches_lightning(tmp_path):
    seen = {}
    for framework in (fastlight, pl):
        class Model(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(4, 2)
                self.norms = []

            def training_step(self, batch, batch_idx):
                return self.net(batch[0]).pow(2).mean()

            def on_before_optimizer_step(self, optimizer):
                norms = (fastlight.utilities if framework is fastlight else pl.utilities).grad_norm(self, 2)
                self.norms.append(_as_plain(norms))
                self.log_dict(norms)

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        torch.manual_seed(1)
        model = Model()
        loader = DataLoader(TensorDataset(torch.randn(12, 4)), batch_size=4)
        trainer = framework.Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
        trainer.fit(model, loader)
        seen[framework.__name__] = (model.norms, sorted(trainer.callback_metrics))
    assert seen["fastlight"] == seen["pytorch_lightning"]
    assert len(seen["fastlight"][0]) == 6


# ---------------------------------------------------------------------------------------------------- move_data_to_device
Pair = namedtuple("Pair", ["a", "b"])


@dataclasses.dataclass
class Record:
    x: torch.Tensor
    names: list
    note: str = "n"


class MovesInPlace:  # a `.to` that forgets to return self
    def __init__(self):
        self.device = None

    def to(self, device):
        self.device = device


class Frozen:
    pass


def _batch():
    dd = defaultdict(list)
    dd["k"] = torch.ones(1)
    return {
        "t": torch.zeros(2),
        "list": [torch.ones(1), "text", 3],
        "tuple": (torch.ones(1), b"raw"),
        "pair": Pair(torch.ones(1), [torch.ones(2)]),
        "ordered": OrderedDict(z=torch.ones(1), a=torch.zeros(1)),
        "default": dd,
        "record": Record(torch.ones(3), [torch.zeros(1)]),
        "module": nn.Linear(1, 1),
        "inplace": MovesInPlace(),
        "other": Frozen(),
    }


def _describe(obj):
    """Structure, types and devices of a batch, comparable across frameworks."""
    if isinstance(obj, torch.Tensor):
        return ("tensor", str(obj.device))
    if isinstance(obj, nn.Module):
        return ("module", str(next(obj.parameters()).device))
    if isinstance(obj, MovesInPlace):
        return ("inplace", str(obj.device))
    if dataclasses.is_dataclass(obj):
        return (type(obj).__name__, {f.name: _describe(getattr(obj, f.name)) for f in dataclasses.fields(obj)})
    if isinstance(obj, dict):
        return (type(obj).__name__, [(k, _describe(v)) for k, v in obj.items()])
    if isinstance(obj, (list, tuple)):
        return (type(obj).__name__, [_describe(v) for v in obj])
    return (type(obj).__name__, obj if isinstance(obj, (str, bytes, int)) else None)


@pytest.mark.parametrize("device", ["meta", torch.device("meta"), "cpu"])
def test_move_data_to_device_walks_collections_like_lightning(device):
    from lightning_fabric.utilities.apply_func import move_data_to_device as pl_move

    ours, theirs = move_data_to_device(_batch(), device), pl_move(_batch(), device)
    assert _describe(ours) == _describe(theirs)
    if str(device) == "meta":
        assert ours["t"].is_meta and ours["record"].x.is_meta and ours["pair"].b[0].is_meta
        assert ours["default"].default_factory is list
        assert ours["inplace"].device == torch.device("meta")


def test_move_data_to_device_is_lightning_and_the_default_transfer_hook():
    assert pl.utilities.move_data_to_device.__name__ == fastlight.utilities.move_data_to_device.__name__
    batch = {"x": torch.zeros(2), "y": [torch.ones(1)]}
    for owner in (fastlight.LightningModule(), fastlight.LightningDataModule()):
        moved = owner.transfer_batch_to_device(batch, torch.device("meta"), 0)
        assert moved["x"].is_meta and moved["y"][0].is_meta


def test_move_data_to_device_refuses_a_frozen_dataclass_without_to():
    @dataclasses.dataclass(frozen=True)
    class Point:
        x: torch.Tensor

    with pytest.raises(ValueError, match="frozen dataclass Point"):
        move_data_to_device(Point(torch.zeros(1)), "meta")


# ---------------------------------------------------------------------------------------------------- toggled_optimizer
def _toggle_states(framework, tmp_path, raise_inside=False):
    class TwoOptimizers(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.automatic_optimization = False
            self.a = nn.Linear(2, 2)
            self.b = nn.Linear(2, 2)
            self.frozen = nn.Linear(2, 2)
            self.frozen.requires_grad_(False)
            self.states = []

        def _state(self):
            return [p.requires_grad for p in self.parameters()]

        def training_step(self, batch, batch_idx):
            opt_a, opt_b = self.optimizers()
            for opt in (opt_a, opt_b):
                try:
                    with self.toggled_optimizer(opt):
                        self.states.append(("inside", self._state()))
                        loss = (self.a(batch[0]) + self.b(batch[0])).sum()
                        opt.zero_grad()
                        self.manual_backward(loss)
                        opt.step()
                        if raise_inside:
                            raise KeyError("inside")
                except KeyError:
                    pass
                self.states.append(("after", self._state()))

        def configure_optimizers(self):
            return (torch.optim.SGD(self.a.parameters(), lr=0.1),
                    torch.optim.SGD(list(self.b.parameters()) + list(self.frozen.parameters()), lr=0.1))

    model = TwoOptimizers()
    trainer = framework.Trainer(max_steps=1, default_root_dir=tmp_path, **QUIET)
    trainer.fit(model, DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2))
    return model.states


@pytest.mark.parametrize("raise_inside", [False, True], ids=["normal_exit", "exception_inside"])
def test_toggled_optimizer_freezes_the_others_inside_and_restores_on_exit(tmp_path, raise_inside):
    ours = _toggle_states(fastlight, tmp_path, raise_inside)
    assert ours == _toggle_states(pl, tmp_path, raise_inside)
    T, F = True, False
    assert ours[0] == ("inside", [T, T, F, F, F, F])  # a's params only; frozen stays frozen
    assert ours[1] == ("after", [T, T, T, T, F, F])
    assert ours[2] == ("inside", [F, F, T, T, F, F])


# ---------------------------------------------------------------------------------------------------- checkpoint keys
def test_checkpoint_hparams_keys_are_lightnings_and_the_ones_written(tmp_path):
    for name in ("CHECKPOINT_HYPER_PARAMS_KEY", "CHECKPOINT_HYPER_PARAMS_NAME", "CHECKPOINT_HYPER_PARAMS_TYPE"):
        assert getattr(fastlight.LightningModule, name) == getattr(pl.LightningModule, name)
        assert getattr(fastlight.LightningDataModule, name) == getattr(pl.LightningDataModule, name)

    class WithHparams(fastlight.LightningModule):
        def __init__(self, width=3):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Linear(width, 1)

        def training_step(self, batch, batch_idx):
            return self.net(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    trainer = fastlight.Trainer(max_steps=1, default_root_dir=tmp_path, **QUIET)
    trainer.fit(WithHparams(), DataLoader(TensorDataset(torch.randn(2, 3)), batch_size=2))
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    ckpt = torch.load(tmp_path / "m.ckpt", weights_only=False)
    assert ckpt[WithHparams.CHECKPOINT_HYPER_PARAMS_KEY] == {"width": 3}
    assert ckpt[WithHparams.CHECKPOINT_HYPER_PARAMS_NAME] == "kwargs"


# ---------------------------------------------------------------------------------------------------- to_torchscript
def _export_model(framework, with_example=True):
    class Exportable(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.5), nn.ReLU(), nn.Linear(8, 2))
            if with_example:
                self.example_input_array = torch.randn(3, 4)

        def forward(self, x):
            return self.net(x)

    torch.manual_seed(0)
    return Exportable()


@pytest.mark.parametrize("method", ["script", "trace"])
@pytest.mark.parametrize("train_mode", [True, False], ids=["train", "eval"])
def test_to_torchscript_matches_lightning_and_restores_the_mode(tmp_path, method, train_mode):
    x = torch.randn(5, 4)
    outputs = []
    for framework in (fastlight, pl):
        model = _export_model(framework).train(train_mode)
        scripted = model.to_torchscript(method=method)
        assert isinstance(scripted, torch.jit.ScriptModule)
        assert model.training is train_mode and all(m.training is train_mode for m in model.modules())
        assert not scripted.training  # exported in eval mode: dropout off
        outputs.append(scripted(x))
    torch.testing.assert_close(outputs[0], outputs[1], rtol=0, atol=0)
    model = _export_model(fastlight)
    torch.testing.assert_close(outputs[0], model.eval()(x), rtol=0, atol=0)


def test_to_torchscript_saves_to_file_path_and_traces_given_inputs(tmp_path):
    model = _export_model(fastlight, with_example=False)
    path = tmp_path / "model.pt"
    scripted = model.to_torchscript(file_path=path, method="trace", example_inputs=torch.randn(2, 4))
    loaded = torch.jit.load(str(path))
    x = torch.randn(3, 4)
    torch.testing.assert_close(loaded(x), scripted(x), rtol=0, atol=0)
    model.to_torchscript(file_path=str(tmp_path / "s.pt"))
    assert os.path.getsize(tmp_path / "s.pt") > 0


def test_to_torchscript_works_on_a_module_attached_to_a_trainer(tmp_path):
    class Fitted(fastlight.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Linear(2, 1)

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            return self(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    model = Fitted()
    fastlight.Trainer(max_steps=1, default_root_dir=tmp_path, **QUIET).fit(
        model, DataLoader(TensorDataset(torch.randn(2, 2)), batch_size=2))
    x = torch.randn(4, 2)
    torch.testing.assert_close(model.to_torchscript()(x), model(x))


def test_to_torchscript_refuses_a_bad_method_and_trace_without_inputs():
    model = _export_model(fastlight, with_example=False)
    with pytest.raises(ValueError, match="'script' or 'trace'.*compile"):
        model.to_torchscript(method="compile")
    with pytest.raises(ValueError, match="example_inputs.*example_input_array"):
        model.to_torchscript(method="trace")
    assert model.training


# ---------------------------------------------------------------------------------------------------- to_onnx
def test_to_onnx_without_any_input_names_both_ways_to_give_one(tmp_path):
    with pytest.raises(ValueError, match="input_sample.*example_input_array"):
        _export_model(fastlight, with_example=False).to_onnx(tmp_path / "m.onnx")


@pytest.mark.skipif(importlib.util.find_spec("onnx") is not None, reason="onnx is installed")
def test_to_onnx_names_the_missing_onnx_package(tmp_path):
    with pytest.raises(ModuleNotFoundError, match="`onnx`"):
        _export_model(fastlight).to_onnx(tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.skipif(importlib.util.find_spec("onnx") is None, reason="needs the onnx package")
def test_to_onnx_exports_with_the_example_input_and_keeps_the_mode(tmp_path):
    model = _export_model(fastlight).train()
    path = tmp_path / "m.onnx"
    model.to_onnx(path, dynamo=False)
    assert path.stat().st_size > 0 and model.training


# ---------------------------------------------------------------------------------------------------- remove_ignored_hparams
def _hparams_of(framework):
    class Base(framework.LightningModule):
        def __init__(self, a=1, b=2, c=3):
            super().__init__()
            self.save_hyperparameters()

    class Child(Base):
        def __init__(self, a=1, b=2, c=3):
            super().__init__(a, b, c)
            self.remove_ignored_hparams(["b", "not_there"])

    class GivenDict(framework.LightningModule):
        def __init__(self, cfg):
            super().__init__()
            self.save_hyperparameters(cfg, ignore=["secret"])

    return dict(Child(a=5).hparams), dict(GivenDict({"lr": 0.1, "secret": 1}).hparams)


def test_remove_ignored_hparams_drops_names_like_lightning():
    assert _hparams_of(fastlight) == _hparams_of(pl) == ({"a": 5, "c": 3}, {"lr": 0.1})
    dm = fastlight.LightningDataModule()
    dm.save_hyperparameters({"x": 1, "y": 2})
    dm.remove_ignored_hparams(["x"])
    assert dict(dm.hparams) == {"y": 2}


# ---------------------------------------------------------------------------------------------------- from_datasets
class Stream(IterableDataset):
    def __iter__(self):
        return iter(torch.arange(6.0).view(6, 1))


def _describe_loaders(loaders):
    if isinstance(loaders, dict):
        return {k: _describe_loaders(v) for k, v in loaders.items()}
    if isinstance(loaders, (list, tuple)):
        return type(loaders).__name__, [_describe_loaders(v) for v in loaders]
    return (type(loaders).__name__, loaders.batch_size, loaders.num_workers, loaders.pin_memory,
            type(loaders.sampler).__name__, len(loaders.dataset) if hasattr(loaders.dataset, "__len__") else None)


def _from_datasets(framework):
    class DataWithArgs(framework.LightningDataModule):
        def __init__(self, batch_size=1, tag="x"):
            super().__init__()
            self.batch_size, self.tag = batch_size, tag

    a, b = TensorDataset(torch.randn(10, 2)), TensorDataset(torch.randn(6, 2))
    dm = DataWithArgs.from_datasets(train_dataset=a, val_dataset=[a, b], test_dataset={"s": Stream(), "b": b},
                                    batch_size=4, num_workers=0, tag="y")
    plain = framework.LightningDataModule.from_datasets(predict_dataset=b, batch_size=2)
    return dm, plain


def test_from_datasets_builds_lightnings_dataloaders():
    (ours, our_plain), (theirs, their_plain) = _from_datasets(fastlight), _from_datasets(pl)
    for stage in ("train", "val", "test"):
        got = _describe_loaders(getattr(ours, f"{stage}_dataloader")())
        assert got == _describe_loaders(getattr(theirs, f"{stage}_dataloader")()), stage
    assert isinstance(ours.train_dataloader().sampler, RandomSampler)  # shuffled for training only
    assert isinstance(ours.val_dataloader()[0].sampler, SequentialSampler)
    assert (ours.batch_size, ours.tag) == (theirs.batch_size, theirs.tag) == (4, "y")
    assert _describe_loaders(our_plain.predict_dataloader()) == _describe_loaders(their_plain.predict_dataloader())
    with pytest.raises(NotImplementedError):  # a stage without a dataset keeps the class's hook
        our_plain.train_dataloader()


def test_from_datasets_datamodule_drives_fit_like_lightning(tmp_path):
    metrics = {}
    for framework in (fastlight, pl):
        class Model(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.net = nn.Linear(2, 1)

            def training_step(self, batch, batch_idx):
                return self.net(batch[0]).pow(2).mean()

            def validation_step(self, batch, batch_idx):
                self.log("val_loss", self.net(batch[0]).pow(2).mean())

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

        torch.manual_seed(3)
        data = TensorDataset(torch.randn(12, 2))
        dm = framework.LightningDataModule.from_datasets(data, val_dataset=data, batch_size=4)
        trainer = framework.Trainer(max_epochs=2, default_root_dir=tmp_path, **QUIET)
        trainer.fit(Model(), datamodule=dm)
        metrics[framework.__name__] = {k: v.item() for k, v in trainer.callback_metrics.items()}
    assert metrics["fastlight"] == metrics["pytorch_lightning"] and "val_loss" in metrics["fastlight"]
