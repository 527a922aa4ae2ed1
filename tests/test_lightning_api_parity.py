"""The Lightning helpers fastlight now provides under Lightning's import paths behave as Lightning's: the same inputs
under pytorch_lightning and fastlight give the same answers (is_overridden, the model summary, batch sizes, OOM
detection, hparams parsing, enums, parameter tying, FLOPs, signatures, flags), and the Trainer accepts Lightning's
objects (Accelerator instances, registered strategy names, precision plugins, CheckpointIO plugins)."""
import os
import pickle
import random
import warnings
from unittest.mock import Mock

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight
import pytorch_lightning as pl


def _quiet_trainer(lib, **kw):
    defaults = dict(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
    defaults.update(kw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return lib.Trainer(**defaults)


def _net_module(lib):
    class Net(lib.LightningModule):
        def __init__(self):
            super().__init__()
            self.encoder = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
            self.head = nn.Linear(4, 2)
            self.frozen = nn.Linear(2, 2)
            self.frozen.requires_grad_(False)
            self.frozen.eval()
            self.example_input_array = torch.zeros(3, 8)

        def forward(self, x):
            return self.frozen(self.head(self.encoder(x)))

        def training_step(self, batch, batch_idx):
            return self(batch[0]).sum()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    return Net


# ------------------------------------------------------------------------------------------------ is_overridden
def test_is_overridden_matches_lightning():
    from fastlight.utilities.model_helpers import is_overridden as ours
    from pytorch_lightning.utilities.model_helpers import is_overridden as theirs

    for lib, fn in ((pl, theirs), (fastlight, ours)):
        model = _net_module(lib)()

        class CB(lib.Callback):
            def on_fit_start(self, trainer, pl_module):
                pass

        class DM(lib.LightningDataModule):
            def train_dataloader(self):
                return []

        answers = [fn("training_step", model), fn("validation_step", model), fn("on_fit_start", CB()),
                   fn("on_fit_end", CB()), fn("train_dataloader", DM()), fn("val_dataloader", DM()),
                   fn("training_step", None)]
        assert answers == [True, False, True, False, True, False, False], (lib.__name__, answers)
        model.validation_step = Mock()  # a bare test double overrides nothing; one wrapping a function does
        assert not fn("validation_step", model)
        model.validation_step = Mock(wraps=lambda *a: None)
        assert fn("validation_step", model)
        with pytest.raises(ValueError):
            fn("forward", object())  # no parent to compare with


# ------------------------------------------------------------------------------------------------ model summary
@pytest.mark.parametrize("max_depth", [1, 2, -1])
def test_model_summary_properties_match_lightning(max_depth):
    from fastlight.utilities.model_summary import ModelSummary as Ours
    from pytorch_lightning.utilities.model_summary import ModelSummary as Theirs

    torch.manual_seed(0)
    theirs = Theirs(_net_module(pl)(), max_depth=max_depth)
    ours = Ours(_net_module(fastlight)(), max_depth=max_depth)
    for prop in ("layer_names", "layer_types", "in_sizes", "out_sizes", "param_nums", "training_modes",
                 "total_training_modes", "total_parameters", "trainable_parameters", "total_layer_params",
                 "model_size"):
        assert getattr(ours, prop) == getattr(theirs, prop), prop
    assert "Total estimated model params size (MB)" in str(ours)


def test_summarize_and_helpers_match_lightning():
    from fastlight.utilities.model_summary import get_formatted_model_size, get_human_readable_count, \
        parse_batch_shape, summarize
    from pytorch_lightning.utilities import model_summary as theirs

    assert summarize(_net_module(fastlight)(), max_depth=1).layer_names == ["encoder", "head", "frozen"]
    for n in (0, 7, 1234, 2_000_000, 3e9, 4e12):
        assert get_human_readable_count(n) == theirs.get_human_readable_count(n)
    assert get_formatted_model_size(1234.56789) == theirs.get_formatted_model_size(1234.56789)
    batch = [torch.zeros(2, 3), (torch.zeros(4),)]
    assert parse_batch_shape(batch) == theirs.model_summary.parse_batch_shape(batch)


# ------------------------------------------------------------------------------------------------ utilities
def test_extract_batch_size_matches_lightning():
    from fastlight.utilities.data import extract_batch_size as ours
    from fastlight.utilities.exceptions import MisconfigurationException
    from pytorch_lightning.utilities.data import extract_batch_size as theirs

    for batch in (torch.zeros(5, 2), torch.tensor(3.0), {"x": torch.zeros(7), "y": [torch.zeros(7, 1)]},
                  ["text", torch.zeros(4, 1)], (torch.zeros(6, 1), {"mask": torch.zeros(6)})):
        assert ours(batch) == theirs(batch)
    with pytest.warns(UserWarning, match="ambiguous collection"):
        assert ours([torch.zeros(2), torch.zeros(3)]) == 2
    with pytest.raises(MisconfigurationException, match="could not infer the batch_size"):
        ours({"a": "no tensor"})


def test_memory_helpers_match_lightning():
    from fastlight.utilities import memory as ours
    from pytorch_lightning.utilities import memory as theirs

    errors = [RuntimeError("CUDA out of memory. Tried to allocate"), RuntimeError("cuDNN error: CUDNN_STATUS_NOT_SUPPORTED."),
              RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried"), RuntimeError("other"),
              ValueError("CUDA out of memory.")]
    for err in errors:
        assert ours.is_oom_error(err) == theirs.is_oom_error(err), err
    nested = {"a": torch.ones(2, requires_grad=True) * 2, "b": [torch.ones(1, requires_grad=True) + 1, 3]}
    detached = ours.recursive_detach(nested, to_cpu=True)
    assert not detached["a"].requires_grad and not detached["b"][0].requires_grad and detached["b"][1] == 3
    ours.garbage_collection_cuda()  # nothing to free without CUDA; must not fail


def test_parsing_helpers_match_lightning():
    from fastlight.utilities import parsing as ours
    from pytorch_lightning.utilities import parsing as theirs

    class Model:
        def __init__(self, hparams, *my_args, anykw=42, **my_kwargs):
            pass

    class NoVarargs:
        def __init__(self, a, b=1):
            pass

    for cls in (Model, NoVarargs):
        assert ours.parse_class_init_keys(cls) == theirs.parse_class_init_keys(cls)
    for obj in (1, "x", lambda: 0, torch.zeros(1)):
        assert ours.is_picklable(obj) == theirs.is_picklable(obj)
    results = []
    for module in (ours, theirs):
        hp = {"ok": 1, "fn": lambda: 0}
        with pytest.warns(UserWarning, match="Attribute 'fn' removed from hparams"):
            module.clean_namespace(hp)
        results.append(hp)
    assert results[0] == results[1] == {"ok": 1}


def test_collect_init_args_matches_lightning():
    import inspect

    from fastlight.utilities import parsing as ours
    from pytorch_lightning.utilities import parsing as theirs

    collected = {}

    class Base:
        def __init__(self, a, b=2, **kwargs):
            super().__init__()
            frame = inspect.currentframe()
            collected[self.tag] = (ours.collect_init_args(frame, []), theirs.collect_init_args(frame, []),
                                   ours.get_init_args(frame), theirs.get_init_args(frame))

    class Child(Base):
        tag = "child"

        def __init__(self, x, **kwargs):
            super().__init__(a=x, **kwargs)

    Child(5, b=3, extra=4)
    mine, lightning, mine_args, lightning_args = collected["child"]
    assert mine == lightning and mine_args == lightning_args


def test_enums_match_lightning():
    from fastlight.utilities.enums import GradClipAlgorithmType as Ours
    from pytorch_lightning.utilities.enums import GradClipAlgorithmType as Theirs

    assert [m.value for m in Ours] == [m.value for m in Theirs]
    assert Ours.NORM == "NORM" and Ours("value") is Ours.VALUE and Ours.supported_types() == Theirs.supported_types()
    assert {Ours.NORM: 1}["norm"] == 1  # hashes like its value


def test_parameter_tying_matches_lightning():
    from fastlight.utilities.parameter_tying import find_shared_parameters, set_shared_parameters
    from pytorch_lightning.utilities.parameter_tying import find_shared_parameters as theirs

    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(3, 3)
            self.b = nn.Linear(3, 3)
            self.b.weight = self.a.weight

    model = Tied()
    shared = find_shared_parameters(model)
    assert shared == theirs(model) == [["a.weight", "b.weight"]]
    model.b.weight = nn.Parameter(model.a.weight.detach().clone())  # untied
    assert find_shared_parameters(model) == []
    set_shared_parameters(model, shared)
    assert model.b.weight is model.a.weight


def test_signature_and_flops_helpers_match_lightning():
    from fastlight.utilities import measure_flops
    from fastlight.utilities.signature_utils import is_param_in_hook_signature as ours
    from lightning_fabric.utilities.throughput import measure_flops as theirs_flops
    from pytorch_lightning.utilities.signature_utils import is_param_in_hook_signature as theirs

    def hook(self, batch, dataloader_iter=None):
        pass

    def varargs(self, *args):
        pass

    for fn in (hook, varargs):
        for param, explicit in (("dataloader_iter", False), ("dataloader_iter", True), ("x", False)):
            assert ours(fn, param, explicit) == theirs(fn, param, explicit)
    model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 2))
    x = torch.randn(4, 8)
    assert measure_flops(model, lambda: model(x)) == theirs_flops(model, lambda: model(x)) > 0
    loss = lambda y: y.sum()  # noqa: E731
    assert measure_flops(model, lambda: model(x), loss) == theirs_flops(model, lambda: model(x), loss)


def test_import_flags_agree_with_lightning():
    from fastlight.utilities import imports as ours
    from pytorch_lightning.utilities import imports as theirs

    names = [n for n in vars(theirs) if n.startswith("_") and n.endswith(("_AVAILABLE", "_0", "_1", "_11", "_6", "_8",
                                                                          "_9")) and hasattr(ours, n)]
    assert len(names) >= 10, names
    for name in names:
        assert bool(getattr(ours, name)) == bool(getattr(theirs, name)), name
    assert not ours.RequirementCache("surely-not-installed-pkg>=1")
    assert "not installed" in str(ours.RequirementCache("surely-not-installed-pkg>=1"))


def test_warning_cache_and_rank_prefixed_message():
    from fastlight.utilities.rank_zero import LightningDeprecationWarning, WarningCache, rank_prefixed_message, \
        rank_zero_deprecation
    from pytorch_lightning.utilities.rank_zero import rank_prefixed_message as theirs

    cache = WarningCache()
    with pytest.warns(UserWarning) as record:
        cache.warn("once")
        cache.warn("once")
    assert len([w for w in record if str(w.message) == "once"]) == 1 and "once" in cache
    assert rank_prefixed_message("hi", 1) == theirs("hi", 1) and rank_prefixed_message("hi", None) == "hi"
    with pytest.warns(LightningDeprecationWarning, match="old"):
        rank_zero_deprecation("old")


def test_seed_helpers():
    from fastlight.utilities.seed import pl_worker_init_function, reset_seed, seed_everything

    seed_everything(7, workers=True, verbose=False)
    first = torch.rand(1)
    reset_seed()
    assert torch.equal(first, torch.rand(1))

    def draws(worker_id):
        torch.manual_seed(1234 + worker_id)  # what torch's DataLoader does before calling worker_init_fn
        pl_worker_init_function(worker_id, rank=0)
        return torch.rand(1).item(), random.random()

    assert draws(0) == draws(0) and draws(0) != draws(1)


def test_worker_seeding_draws_what_lightnings_workers_draw():
    """pl_worker_init_function seeds a worker's torch, random and numpy as Lightning's does (same numbers)."""
    np = pytest.importorskip("numpy")
    from lightning_fabric.utilities.seed import pl_worker_init_function as theirs

    from fastlight.utilities.seed import pl_worker_init_function as ours

    def draws(init, worker_id, rank):
        torch.manual_seed(0x9E3779B97F4A7C15 + worker_id)  # a 64-bit base seed, as torch's DataLoader gives workers
        init(worker_id, rank=rank)
        return torch.rand(2).tolist(), random.random(), np.random.rand(2).tolist()

    for worker_id, rank in ((0, 0), (1, 0), (3, 2)):
        assert draws(ours, worker_id, rank) == draws(theirs, worker_id, rank)
    assert draws(ours, 0, 0) != draws(ours, 1, 0) != draws(ours, 1, 1)


class _RandomPerSample(torch.utils.data.Dataset):
    """What a random augmentation draws in a worker: torch, random and numpy."""

    def __len__(self):
        return 8

    def __getitem__(self, index):
        import numpy as np

        return torch.tensor([float(index), torch.rand(1).item(), random.random(), float(np.random.rand())])


@pytest.mark.parametrize("workers", [True, False])
def test_seed_everything_workers_seeds_each_dataloader_worker_as_lightning(workers, tmp_path):
    """`seed_everything(seed, workers=True)`: the Trainer gives each loader without a worker_init_fn Lightning's worker
    seeding (numpy then differs between workers, and the samples are Lightning's); workers=False leaves it alone."""
    pytest.importorskip("numpy")
    seen = {}
    for name, lib in (("pl", pl), ("fl", fastlight)):
        batches = []

        class Model(_net_module(lib)):
            def training_step(self, batch, batch_idx):
                batches.append(batch.clone())
                return self.head.weight.pow(2).sum()

        lib.seed_everything(123, workers=workers)
        loader = DataLoader(_RandomPerSample(), batch_size=2, num_workers=2, shuffle=False)
        trainer = lib.Trainer(default_root_dir=tmp_path / name, max_epochs=1, logger=False, enable_progress_bar=False,
                              enable_checkpointing=False, enable_model_summary=False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            trainer.fit(Model(), loader)
        seen[name] = (torch.cat(batches), loader.worker_init_fn)
    ours, theirs = seen["fl"], seen["pl"]
    if workers:
        assert ours[1].keywords == theirs[1].keywords == {"rank": 0}
        assert ours[1].func.__name__ == theirs[1].func.__name__ == "pl_worker_init_function"
        assert torch.equal(ours[0], theirs[0])
        # the two workers' numpy draws differ (batches 0, 2 come from worker 0; 1, 3 from worker 1)
        assert ours[0][0, 3] != ours[0][2, 3]
    else:
        assert ours[1] is None and theirs[1] is None


def test_compile_helpers_round_trip():
    from fastlight.utilities.compile import from_compiled, to_uncompiled

    model = _net_module(fastlight)()
    forward = model.forward
    compiled = torch.compile(model)
    restored = from_compiled(compiled)
    assert restored is model and model._compiler_ctx["compiler"] == "dynamo"
    assert to_uncompiled(model) is model and model._compiler_ctx is None and model.forward == forward
    with pytest.raises(ValueError, match="non-compiled"):
        to_uncompiled(model)


# ------------------------------------------------------------------------------------------------ Trainer objects
def _fit(lib, trainer, model=None):
    model = model or _net_module(lib)()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        trainer.fit(model, DataLoader(TensorDataset(torch.randn(8, 8)), batch_size=4))
    return model


def test_trainer_takes_an_accelerator_instance():
    from fastlight.accelerators import CPUAccelerator, CUDAAccelerator, XLAAccelerator, find_usable_cuda_devices
    from pytorch_lightning.accelerators import CPUAccelerator as PLCPU

    trainer = _quiet_trainer(fastlight, accelerator=CPUAccelerator())
    assert isinstance(trainer.accelerator, CPUAccelerator) and trainer.root_device.type == "cpu"
    assert isinstance(_quiet_trainer(pl, accelerator=PLCPU()).accelerator, PLCPU)
    for devices in (1, "3"):
        assert CPUAccelerator.parse_devices(devices) == PLCPU.parse_devices(devices)
    for bad in ("auto", 0, 1.5):
        with pytest.raises(TypeError):
            PLCPU.parse_devices(bad)
        with pytest.raises(TypeError):
            CPUAccelerator.parse_devices(bad)
    assert CUDAAccelerator.is_available() == torch.cuda.is_available()
    with pytest.raises(NotImplementedError, match="TPU"):
        XLAAccelerator()
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no visible CUDA devices"):
            find_usable_cuda_devices(1)


def test_registered_strategy_name_is_accepted_by_the_trainer():
    from fastlight.strategies import DDPStrategy, StrategyRegistry

    with pytest.raises(ValueError, match="already present"):
        StrategyRegistry.register("ddp", DDPStrategy)
    StrategyRegistry.register("ddp_unused_test", DDPStrategy, description="test", find_unused_parameters=True)
    try:
        trainer = _quiet_trainer(fastlight, strategy="ddp_unused_test", accelerator="cpu", devices=2)
        assert isinstance(trainer.strategy, DDPStrategy) and trainer.strategy._ddp_kwargs["find_unused_parameters"]
        assert "ddp_unused_test" in StrategyRegistry.available_strategies()
    finally:
        StrategyRegistry.remove("ddp_unused_test")
    assert "ddp_spawn" in StrategyRegistry and "fsdp" in StrategyRegistry


def test_double_precision_plugin_trains_like_lightning():
    from fastlight.plugins import DoublePrecision
    from pytorch_lightning.plugins import DoublePrecision as PLDouble

    weights = []
    for lib, plugin in ((pl, PLDouble()), (fastlight, DoublePrecision())):
        torch.manual_seed(0)
        trainer = _quiet_trainer(lib, plugins=[plugin], fused=False) if lib is fastlight else \
            _quiet_trainer(lib, plugins=[plugin])
        model = _fit(lib, trainer)
        assert trainer.precision == "64-true" and model.head.weight.dtype == torch.float64
        weights.append(model.head.weight.detach())
    torch.testing.assert_close(weights[0], weights[1], rtol=0, atol=0)


def test_unsupported_plugins_name_what_to_use():
    from fastlight.plugins import BitsandbytesPrecision, DeepSpeedPrecision, FSDPPrecision
    from fastlight.plugins.environments import KubeflowEnvironment
    from fastlight.utilities.exceptions import MisconfigurationException

    for cls in (FSDPPrecision, DeepSpeedPrecision, BitsandbytesPrecision, KubeflowEnvironment):
        with pytest.raises(MisconfigurationException, match=cls.__name__):
            cls()
    with pytest.raises(MisconfigurationException, match="cluster_environment"):
        from fastlight.plugins.environments import SLURMEnvironment

        _quiet_trainer(fastlight, plugins=[SLURMEnvironment()])


def test_checkpoint_io_plugins(tmp_path):
    from fastlight.plugins import AsyncCheckpointIO, CheckpointIO, TorchCheckpointIO

    calls = []

    class Recording(CheckpointIO):
        def save_checkpoint(self, checkpoint, path, storage_options=None):
            calls.append(("save", os.path.basename(path)))
            TorchCheckpointIO().save_checkpoint(checkpoint, path)

        def load_checkpoint(self, path, map_location=None, weights_only=None):
            return TorchCheckpointIO().load_checkpoint(path, map_location=map_location, weights_only=weights_only)

        def remove_checkpoint(self, path):
            calls.append(("remove", os.path.basename(path)))
            TorchCheckpointIO().remove_checkpoint(path)

    assert isinstance(TorchCheckpointIO(), CheckpointIO)
    trainer = _quiet_trainer(fastlight, max_epochs=2, enable_checkpointing=True, default_root_dir=tmp_path / "a",
                             plugins=[Recording()])
    _fit(fastlight, trainer)
    assert calls == [("save", "epoch=0-step=2.ckpt"), ("save", "epoch=1-step=4.ckpt"),
                     ("remove", "epoch=0-step=2.ckpt")]

    trainer = _quiet_trainer(fastlight, max_epochs=3, enable_checkpointing=True, default_root_dir=tmp_path / "b",
                             plugins=[AsyncCheckpointIO()])
    model = _fit(fastlight, trainer)
    files = sorted(os.listdir(tmp_path / "b" / "checkpoints"))
    assert files == ["epoch=2-step=6.ckpt"], files  # written in the background; the rotation waited for the writes
    saved = torch.load(tmp_path / "b" / "checkpoints" / files[0], weights_only=False)
    torch.testing.assert_close(saved["state_dict"]["head.weight"], model.head.weight.detach())


def test_async_checkpoint_io_snapshots_tensors_and_reports_errors(tmp_path):
    from fastlight.plugins import AsyncCheckpointIO

    io = AsyncCheckpointIO()
    tensor = torch.zeros(3)
    io.save_checkpoint({"t": tensor}, tmp_path / "a.ckpt")
    tensor += 1  # training goes on and changes it while the file is written
    io.teardown()
    assert torch.equal(torch.load(tmp_path / "a.ckpt")["t"], torch.zeros(3))

    io = AsyncCheckpointIO()
    io.save_checkpoint({"t": tensor}, tmp_path / "missing_dir" / "sub" / "b.ckpt")
    failing = AsyncCheckpointIO()
    failing.save_checkpoint({"fn": lambda: 0}, tmp_path / "c.ckpt")  # a lambda cannot be pickled
    with pytest.raises(RuntimeError, match="background"):
        failing.teardown()
    io.teardown()


def test_torch_sync_batchnorm_plugin_round_trip():
    from fastlight.plugins import TorchSyncBatchNorm

    model = nn.Sequential(nn.Conv2d(1, 2, 1), nn.BatchNorm2d(2))
    model[1].running_mean += 3
    synced = TorchSyncBatchNorm().apply(model)
    assert isinstance(synced[1], nn.SyncBatchNorm)
    reverted = TorchSyncBatchNorm().revert(synced)
    assert type(reverted[1]) is nn.BatchNorm2d and torch.equal(reverted[1].running_mean, torch.full((2,), 3.0))
    trainer = _quiet_trainer(fastlight, plugins=[TorchSyncBatchNorm()], accelerator="cpu", devices=2,
                             strategy="ddp_spawn")
    assert trainer.strategy.sync_batchnorm


def test_pickled_enums_and_registry_objects():
    from fastlight.callbacks.timer import Interval
    from fastlight.utilities.enums import GradClipAlgorithmType

    assert pickle.loads(pickle.dumps(GradClipAlgorithmType.NORM)) is GradClipAlgorithmType.NORM
    assert Interval("step") == "STEP"


def test_cuda_accelerator_setup_logs_lightnings_device_lines(monkeypatch):
    """The per-process GPU lines Lightning logs at fit start (checked with a faked 2-GPU Ampere+ machine)."""
    import logging
    import types

    from fastlight.accelerators import CUDAAccelerator

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: (9, 0))
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Fake H200")
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    lines = []

    class Handler(logging.Handler):
        def emit(self, record):
            lines.append(record.getMessage())

    handler = Handler()
    logging.getLogger("lightning.pytorch").addHandler(handler)
    previous = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        trainer = types.SimpleNamespace(local_rank=1, strategy=types.SimpleNamespace(root_device=torch.device("cuda", 1)))
        CUDAAccelerator().setup(trainer)
        assert lines[0] == "LOCAL_RANK: 1 - CUDA_VISIBLE_DEVICES: [0,1]"
        assert lines[1].startswith("You are using a CUDA device ('Fake H200') that has Tensor Cores.")
        lines.clear()
        torch.set_float32_matmul_precision("high")  # the user chose: no hint
        CUDAAccelerator().setup(trainer)
        assert lines == ["LOCAL_RANK: 1 - CUDA_VISIBLE_DEVICES: [0,1]"]
    finally:
        torch.set_float32_matmul_precision(previous)
        logging.getLogger("lightning.pytorch").removeHandler(handler)


def test_load_from_checkpoint_on_an_instance_is_refused_like_lightning(tmp_path):
    """`model.load_from_checkpoint(path)` would return a new model and leave `model` as it was: both refuse it."""
    from fastlight.utilities.model_helpers import _ModuleMode

    for lib in (pl, fastlight):
        model = _net_module(lib)()
        method = model.load_from_checkpoint  # looking it up is fine
        with pytest.raises(TypeError, match="cannot be called on an instance"):
            method(tmp_path / "x.ckpt")
        with pytest.raises(TypeError, match="cannot be called on an instance"):
            lib.LightningDataModule().load_from_checkpoint(tmp_path / "x.ckpt")
    model = _net_module(fastlight)()
    mode = _ModuleMode()
    mode.capture(model)
    model.train()
    mode.restore(model)
    assert not model.frozen.training and model.encoder.training
