"""Lightning's strategy API around the module (connect, lightning_module, backward, tensor_init_context), the CUDA
device probe, and the Trainer's private connectors (`_checkpoint_connector`, `_accelerator_connector`), each run side
by side with pytorch_lightning on the same user code."""
import os
import warnings
from unittest import mock

import pytest
import torch

import fastlight as fl
from _parity_helpers import build, build_manual, quiet_warnings, trainer_kwargs

pl_ref = pytest.importorskip("pytorch_lightning")
quiet_warnings()

FRAMEWORKS = [pytest.param(pl_ref, id="lightning"), pytest.param(fl, id="fastlight")]


def _fit(pl, model, tmp_path, **kw):
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, limit_train_batches=3, limit_val_batches=0, **kw))
    trainer.fit(model)
    return trainer


# ------------------------------------------------------------------------------------------------ strategy.backward
def _backward_calls(pl, model, tmp_path, **kw):
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, limit_train_batches=4, limit_val_batches=0, **kw))
    with mock.patch.object(pl.strategies.Strategy, "backward", wraps=trainer.strategy.backward) as backward:
        trainer.fit(model)
    return backward


def test_manual_backward_goes_through_strategy_backward_like_lightning(tmp_path):
    # build_manual: the discriminator steps every batch, the generator every other one -> 6 backwards in 4 batches
    ref = _backward_calls(pl_ref, build_manual(pl_ref)(), tmp_path)
    got = _backward_calls(fl, build_manual(fl)(), tmp_path)
    assert got.call_count == ref.call_count == 6
    # Lightning's call: (loss, None), the optimizer left to the user's own step
    assert [c.args[1] for c in got.call_args_list] == [c.args[1] for c in ref.call_args_list] == [None] * 6


def test_automatic_optimization_calls_a_patched_strategy_backward_like_lightning(tmp_path):
    ref = _backward_calls(pl_ref, build(pl_ref)(), tmp_path)
    got = _backward_calls(fl, build(fl)(), tmp_path)
    assert got.call_count == ref.call_count == 4
    # the torch optimizer (not the LightningOptimizer), as Lightning passes it
    assert all(isinstance(c.args[1], torch.optim.SGD) for c in got.call_args_list)


@pytest.mark.parametrize("fused", [True, False])
def test_a_strategy_overriding_backward_runs_in_the_fit_loop(tmp_path, fused):
    """A user's strategy that takes over the backward (here: scales the loss by 0) is what the loop calls, in
    Lightning and in fastlight, fused engine or not: the weights stay where they were."""

    def strategy_cls(pl):
        class FrozenBackward(pl.strategies.SingleDeviceStrategy):
            calls = 0

            def backward(self, closure_loss, optimizer, *args, **kwargs):
                FrozenBackward.calls += 1
                return super().backward(closure_loss * 0.0, optimizer, *args, **kwargs)

        return FrozenBackward

    results = {}
    for pl in (pl_ref, fl):
        cls = strategy_cls(pl)
        model = build(pl)(optimizer="adam")  # no weight decay: zero gradients leave the weights where they are
        before = {k: v.clone() for k, v in model.state_dict().items()}
        extra = {"fused": fused} if pl is fl else {}
        _fit(pl, model, tmp_path, strategy=cls(device="cpu"), **extra)
        results[pl.__name__] = cls.calls
        for k, v in model.state_dict().items():
            torch.testing.assert_close(v, before[k], rtol=0, atol=0)
    assert results["fastlight"] == results["pytorch_lightning"] == 3


def test_strategy_backward_runs_the_backward_hooks_and_returns_the_detached_loss(tmp_path):
    seen = {}

    def model_cls(pl):
        class Model(build(pl)):
            def __init__(self):
                super().__init__()
                self.automatic_optimization = False
                self.calls = []

            def training_step(self, batch, batch_idx):
                x, y = batch
                loss = torch.nn.functional.cross_entropy(self(x), y)
                out = self.trainer.strategy.backward(loss, None)
                seen[pl.__name__] = (out.requires_grad, torch.equal(out, loss.detach()))
                opt = self.optimizers()
                opt.step()
                opt.zero_grad()

            def on_before_backward(self, loss):
                self.calls.append("on_before_backward")

            def backward(self, loss, *args, **kwargs):
                self.calls.append("backward")
                super().backward(loss, *args, **kwargs)

            def on_after_backward(self):
                self.calls.append("on_after_backward")

        return Model

    ref, got = model_cls(pl_ref)(), model_cls(fl)()
    _fit(pl_ref, ref, tmp_path)
    _fit(fl, got, tmp_path)
    assert got.calls == ref.calls == ["on_before_backward", "backward", "on_after_backward"] * 3
    assert seen["fastlight"] == seen["pytorch_lightning"] == (False, True)


def test_strategy_backward_without_a_trainer_says_what_is_missing():
    strategy = fl.strategies.SingleDeviceStrategy("cpu")
    strategy.connect(build(fl)())
    with pytest.raises(RuntimeError, match=r"strategy.backward.*attached to a Trainer"):
        strategy.backward(torch.tensor(1.0, requires_grad=True), None)


# ------------------------------------------------------------------------------------ connect / lightning_module
@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_connect_makes_the_module_the_trainers(pl):
    trainer = pl.Trainer(**trainer_kwargs("."))
    model = build(pl)()
    assert trainer.lightning_module is None and trainer.model is None and trainer.strategy.lightning_module is None
    trainer.strategy.connect(model)
    assert trainer.strategy.lightning_module is model
    assert trainer.strategy.model is model
    assert trainer.lightning_module is model
    assert trainer.model is model


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_the_fitted_module_stays_connected_after_fit(pl, tmp_path):
    model = build(pl)()
    trainer = _fit(pl, model, tmp_path)
    assert trainer.lightning_module is model and trainer.strategy.lightning_module is model
    assert trainer.model is model  # unwrapped again after teardown
    other = build(pl)()
    trainer.validate(other, dataloaders=torch.utils.data.DataLoader(torch.utils.data.TensorDataset(
        torch.randn(8, 8), torch.randint(0, 3, (8,))), batch_size=4), verbose=False)
    assert trainer.lightning_module is other


# ------------------------------------------------------------------------------------------ tensor_init_context
@pytest.mark.parametrize("empty_init", [None, True])
def test_init_module_asks_the_strategy_like_lightning(empty_init):
    for pl in (pl_ref, fl):
        trainer = pl.Trainer(**trainer_kwargs(".", precision="64-true"))
        strategy = trainer.strategy
        with mock.patch.object(strategy, "tensor_init_context", wraps=strategy.tensor_init_context) as ctx:
            with trainer.init_module(empty_init=empty_init):
                layer = torch.nn.Linear(3, 3)
        ctx.assert_called_once_with(empty_init=empty_init)
        assert layer.weight.dtype == torch.float64, pl.__name__


def test_tensor_init_context_skips_initialization_only_when_asked():
    """torch.nn.init draws from the RNG: with empty_init=True nothing is drawn, without it the weights are torch's."""
    strategy = fl.Trainer(**trainer_kwargs(".")).strategy
    torch.manual_seed(0)
    state = torch.get_rng_state()
    with strategy.tensor_init_context(empty_init=True):
        torch.nn.Linear(3, 3)
    assert torch.equal(torch.get_rng_state(), state)
    torch.manual_seed(0)
    with strategy.tensor_init_context():
        a = torch.nn.Linear(3, 3)
    torch.manual_seed(0)
    b = torch.nn.Linear(3, 3)
    assert torch.equal(a.weight, b.weight)


# ------------------------------------------------------------------------------------------------- the CUDA probe
DEVICE_FLAGS = [
    {"accelerator": "gpu", "devices": 1},
    {"accelerator": "cuda", "devices": 2},
    {"accelerator": "cuda", "devices": "2"},
    {"accelerator": "cuda", "devices": [2]},
    {"accelerator": "cuda", "devices": "2,"},
    {"accelerator": "cuda", "devices": [0, 2]},
    {"accelerator": "cuda", "devices": "0, 2"},
    {"accelerator": "cuda", "devices": -1},
    {"devices": 2},
    {"accelerator": "cpu", "devices": 2},
]


@pytest.mark.parametrize("flags", DEVICE_FLAGS, ids=str)
def test_patched_cuda_count_configures_trainers_as_on_a_gpu_machine(monkeypatch, flags):
    """Lightning's tests pretend to have GPUs by patching its `num_cuda_devices` probe; fastlight decides through the
    same-named probe, so the same patch gives the same device ids and strategy (no CUDA call at construction)."""
    import lightning_fabric.accelerators.cuda
    import pytorch_lightning.accelerators.cuda

    import fastlight.accelerators.cuda

    monkeypatch.setattr(lightning_fabric.accelerators.cuda, "num_cuda_devices", lambda: 4)
    monkeypatch.setattr(pytorch_lightning.accelerators.cuda, "num_cuda_devices", lambda: 4)
    monkeypatch.setattr(fastlight.accelerators.cuda, "num_cuda_devices", lambda: 4)
    ref = pl_ref.Trainer(logger=False, **flags)
    got = fl.Trainer(logger=False, **flags)
    assert got.device_ids == ref.device_ids
    assert got.num_devices == ref.num_devices
    assert type(got.strategy).__name__ == type(ref.strategy).__name__
    assert got.root_device.type == ref.strategy.root_device.type


def test_without_cuda_devices_asking_for_a_gpu_is_an_error(monkeypatch):
    import fastlight.accelerators.cuda

    monkeypatch.setattr(fastlight.accelerators.cuda, "num_cuda_devices", lambda: 0)
    assert not fl.accelerators.CUDAAccelerator.is_available()
    from fastlight.trainer.config import ConfigError

    with pytest.raises(ConfigError, match="no CUDA device is available"):
        fl.Trainer(accelerator="cuda", logger=False)
    assert fl.Trainer(logger=False).root_device.type == "cpu"


# ------------------------------------------------------------------------------------------ _checkpoint_connector
@pytest.mark.parametrize("ckpt_path", [None, "last"])
@pytest.mark.parametrize("fn", ["fit", "validate"])
def test_ckpt_path_selection_with_an_on_exception_checkpoint_like_lightning(tmp_path, fn, ckpt_path):
    outcomes = {}
    for pl in (pl_ref, fl):
        folder = tmp_path / pl.__name__
        folder.mkdir()
        mc = pl.callbacks.ModelCheckpoint()
        mc.best_model_path = "best.ckpt"
        on_exception = pl.callbacks.OnExceptionCheckpoint(str(folder))
        open(on_exception.ckpt_path, "w").close()
        trainer = pl.Trainer(**trainer_kwargs(tmp_path, enable_checkpointing=True, callbacks=[mc, on_exception]))
        state_fn = pl.trainer.states.TrainerFn(fn)
        trainer.state.fn = state_fn
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            path = trainer._checkpoint_connector._parse_ckpt_path(
                state_fn, ckpt_path, model_provided=fn == "fit", model_connected=True)
        relevant = [str(w.message) for w in caught if "ckpt_path" in str(w.message)]
        outcomes[pl.__name__] = (os.path.basename(path), relevant)
    assert outcomes["fastlight"] == outcomes["pytorch_lightning"]


def test_ckpt_path_without_any_model_is_an_error_like_lightning():
    for pl in (pl_ref, fl):
        trainer = pl.Trainer(**trainer_kwargs("."))
        with pytest.raises(ValueError, match="found no path for the best weights"):
            trainer._checkpoint_connector._parse_ckpt_path(pl.trainer.states.TrainerFn.VALIDATING, None,
                                                            model_provided=False, model_connected=False)


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_restoring_the_training_state_from_a_weights_only_checkpoint_raises(pl, tmp_path):
    trainer = _fit(pl, build(pl)(), tmp_path)
    path = str(tmp_path / "weights.ckpt")
    trainer.save_checkpoint(path, weights_only=True)
    with pytest.raises(KeyError, match="checkpoint contains only the model"):
        trainer._checkpoint_connector.restore(path)


def test_connector_restore_puts_back_weights_and_optimizer_state(tmp_path):
    trainer = _fit(fl, build(fl)(optimizer="adam"), tmp_path)
    path = str(tmp_path / "full.ckpt")
    trainer.save_checkpoint(path)
    model = trainer.lightning_module
    saved = {k: v.clone() for k, v in model.state_dict().items()}
    saved_opt = trainer.optimizers[0].state_dict()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    trainer.optimizers[0].state.clear()
    trainer._checkpoint_connector.restore(path)
    for k, v in model.state_dict().items():
        assert torch.equal(v, saved[k])
    restored = trainer.optimizers[0].state_dict()["state"]
    for idx, state in saved_opt["state"].items():
        assert torch.equal(restored[idx]["exp_avg"], state["exp_avg"])
    assert trainer._checkpoint_connector._loaded_checkpoint is None  # freed by resume_end


def test_dump_checkpoint_has_lightnings_keys(tmp_path):
    ref = _fit(pl_ref, build(pl_ref)(), tmp_path)
    got = _fit(fl, build(fl)(), tmp_path)
    ref_ckpt = ref._checkpoint_connector.dump_checkpoint()
    got_ckpt = got._checkpoint_connector.dump_checkpoint()
    assert set(got_ckpt) - {"fastlight_version", "fastlight_resume"} == set(ref_ckpt)
    assert got._checkpoint_connector._get_loops_state_dict() == ref._checkpoint_connector._get_loops_state_dict()
    assert set(got._checkpoint_connector.dump_checkpoint(weights_only=True)) - {"fastlight_version"} == set(
        ref._checkpoint_connector.dump_checkpoint(weights_only=True))


def test_hpc_save_path_numbers_like_lightning(tmp_path):
    from pytorch_lightning.trainer.connectors.checkpoint_connector import _CheckpointConnector

    from fastlight.trainer.connector_views import CheckpointConnector

    assert os.path.basename(CheckpointConnector.hpc_save_path(str(tmp_path))) == "hpc_ckpt_1.ckpt"
    for name in ("hpc_ckpt_1.ckpt", "hpc_ckpt_3.ckpt", "other.txt"):
        (tmp_path / name).touch()
    assert CheckpointConnector.hpc_save_path(str(tmp_path)) == _CheckpointConnector.hpc_save_path(str(tmp_path))


# ----------------------------------------------------------------------------------------- _accelerator_connector
@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_accelerator_connector_reports_the_resolved_flags(pl):
    trainer = pl.Trainer(**trainer_kwargs("."))
    connector = trainer._accelerator_connector
    assert connector.strategy is trainer.strategy
    assert connector.is_distributed is False
    assert connector._accelerator_flag == "cpu"
    assert connector.precision_plugin is trainer.precision_plugin
    ddp = pl.Trainer(**trainer_kwargs(".", devices=2, strategy="ddp"))
    assert ddp._accelerator_connector.is_distributed is True


@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_a_strategy_set_on_the_accelerator_connector_is_the_trainers(pl):
    trainer = pl.Trainer(**trainer_kwargs(".", precision="64-true"))
    strategy = pl.strategies.SingleDeviceStrategy(device=torch.device("cpu"))
    trainer._accelerator_connector.strategy = strategy
    assert trainer.strategy is strategy
    with mock.patch.object(strategy, "tensor_init_context", wraps=strategy.tensor_init_context) as ctx:
        with trainer.init_module():
            pass
    ctx.assert_called_once_with(empty_init=None)


# ------------------------------------------------------------------------------------------- strategy.optimizers
@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_the_optimizers_are_the_strategys_and_rewrapped_for_each_run(pl, tmp_path):
    model = build(pl)(optimizer="adam")
    trainer = pl.Trainer(**trainer_kwargs(tmp_path, max_epochs=1, limit_train_batches=2, limit_val_batches=0))
    pl.tuner.Tuner(trainer).lr_find(model, num_training=5, early_stop_threshold=None)
    assert trainer.strategy._lightning_optimizers[0].optimizer is trainer.optimizers[0]
    first = trainer.optimizers[0]
    trainer.fit(model)
    assert trainer.strategy.optimizers is trainer.optimizers or trainer.strategy.optimizers == trainer.optimizers
    assert trainer.optimizers[0] is not first  # configure_optimizers ran again
    assert trainer.strategy._lightning_optimizers[0].optimizer is trainer.optimizers[0]
    assert model.optimizers().optimizer is trainer.optimizers[0]


# ----------------------------------------------------------------------------------------------- _data_connector
@pytest.mark.parametrize("pl", FRAMEWORKS)
def test_attach_data_then_setup_data_loads_each_stages_loaders(pl):
    trainer = pl.Trainer(**trainer_kwargs(".", limit_val_batches=1, limit_test_batches=0.5))
    model = build(pl)(n_train=40, n_val=16, batch_size=8)
    trainer.strategy.connect(model)
    trainer._data_connector.attach_data(model)
    assert model.trainer is trainer
    trainer.state.fn = pl.trainer.states.TrainerFn.FITTING
    trainer.fit_loop.setup_data()
    assert trainer.num_training_batches == 5
    trainer.state.fn = pl.trainer.states.TrainerFn.VALIDATING
    trainer.validate_loop.setup_data()
    assert trainer.num_val_batches == [1]


def test_attached_loaders_and_datamodule_like_lightning():
    from _parity_helpers import build_datamodule, make_data

    def counts(pl):
        trainer = pl.Trainer(**trainer_kwargs("."))
        model = build(pl)()
        given = torch.utils.data.DataLoader(make_data(24), batch_size=4)
        trainer.strategy.connect(model)
        trainer._data_connector.attach_data(model, train_dataloaders=given)
        trainer.state.fn = pl.trainer.states.TrainerFn.FITTING
        trainer.fit_loop.setup_data()
        from_given = trainer.num_training_batches
        datamodule = build_datamodule(pl)()
        datamodule.setup("fit")
        trainer._data_connector.attach_data(model, train_dataloaders=given, datamodule=datamodule)
        assert trainer.datamodule is datamodule and datamodule.trainer is trainer
        trainer.fit_loop.setup_data()
        return from_given, trainer.num_training_batches

    got, ref = counts(fl), counts(pl_ref)
    assert got == ref
    assert got[0] == 6 and got[1] != 6  # the datamodule's hook wins over a given loader, as in Lightning
