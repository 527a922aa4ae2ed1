"""fused=True (the default) must be invisible: what a user sees or saves of the optimizers is what Lightning gives with
the same code (LearningRateMonitor keys, reprs, pickles, checkpoint contents), while the step runs the fused kernels.
Each item runs the same user code under pytorch_lightning and fastlight."""
import copy
import pickle

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight import ops
from fastlight.engine.optim import _FusedMixin

pl_ref = pytest.importorskip("pytorch_lightning")
pytestmark = pytest.mark.skipif(ops.backend("cpu") != "native", reason="native CPU kernels not built")

OPTIMIZERS = {
    "adam": lambda p: torch.optim.Adam(p, lr=0.01),
    "adamw": lambda p: torch.optim.AdamW(p, lr=0.01, amsgrad=True),
    "sgd": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9),
    "sgd_plain": lambda p: torch.optim.SGD(p, lr=0.1),
}


class _Data:
    def train_dataloader(self):
        return DataLoader(TensorDataset(torch.randn(8, 4)), batch_size=2)


def _module_cls(pl, make_opt, manual=False):
    class Model(_Data, pl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 2)
            self.automatic_optimization = not manual
            self.seen = {}

        def training_step(self, batch, batch_idx):
            loss = self.layer(batch[0]).square().mean()
            if manual:
                opt = self.optimizers()
                self.seen["lightning_optimizer_repr"] = repr(opt)
                self.seen["lightning_optimizer_class"] = type(opt).__name__
                opt.zero_grad()
                self.manual_backward(loss)
                opt.step()
                return None
            return loss

        def configure_optimizers(self):
            opt = make_opt(self.parameters())
            self.seen["original"] = opt
            return {"optimizer": opt, "lr_scheduler": torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)}

    return Model


def _fit(pl, tmp_path, make_opt, manual=False):
    torch.manual_seed(0)
    monitor = pl.callbacks.LearningRateMonitor()
    trainer = pl.Trainer(max_epochs=2, logger=pl.loggers.CSVLogger(tmp_path), callbacks=[monitor],
                         enable_progress_bar=False, enable_model_summary=False, default_root_dir=tmp_path)
    model = _module_cls(pl, make_opt, manual)()
    trainer.fit(model)
    path = tmp_path / "last.ckpt"
    trainer.save_checkpoint(path)
    return trainer, model, monitor, torch.load(path, weights_only=False)


def _state_layout(optimizer_state):
    """Each param's state: its keys and, for tensors, dtype, device and shape."""
    return {i: {k: (type(v).__name__, getattr(v, "dtype", None), str(getattr(v, "device", "")),
                    tuple(getattr(v, "shape", ())))
                for k, v in s.items()}
            for i, s in optimizer_state["state"].items()}


@pytest.fixture(params=sorted(OPTIMIZERS))
def both(request, tmp_path):
    make_opt = OPTIMIZERS[request.param]
    ref = _fit(pl_ref, tmp_path / "pl", make_opt)
    got = _fit(fl, tmp_path / "fl", make_opt)
    assert isinstance(got[0].optimizers[0], _FusedMixin), "the fused kernels must be what steps"
    return ref, got


def test_the_users_optimizer_object_is_the_one_trained(both):
    (ref_trainer, ref_model, _, _), (trainer, model, _, _) = both
    assert ref_trainer.optimizers[0] is ref_model.seen["original"]
    assert trainer.optimizers[0] is model.seen["original"]
    assert model.optimizers().optimizer is model.seen["original"]


def test_learning_rate_monitor_keys_name_the_users_optimizer(both):
    (_, _, ref_monitor, _), (trainer, _, monitor, _) = both
    assert sorted(monitor.lrs) == sorted(ref_monitor.lrs)
    for key, values in ref_monitor.lrs.items():
        assert monitor.lrs[key] == pytest.approx(values)
    assert not any("Fused" in k for k in trainer.callback_metrics)


def test_optimizer_and_lightning_optimizer_repr_and_class_name(both):
    (ref_trainer, ref_model, _, _), (trainer, model, _, _) = both
    assert repr(trainer.optimizers[0]) == repr(ref_trainer.optimizers[0])
    assert type(trainer.optimizers[0]).__name__ == type(ref_trainer.optimizers[0]).__name__
    assert str(type(trainer.optimizers[0])) == str(type(ref_trainer.optimizers[0]))
    assert repr(model.optimizers()) == repr(ref_model.optimizers())
    assert type(model.optimizers()).__name__ == type(ref_model.optimizers()).__name__


def test_pickled_and_copied_optimizer_is_the_torch_class(both):
    (ref_trainer, _, _, _), (trainer, _, _, _) = both
    ref_opt, opt = ref_trainer.optimizers[0], trainer.optimizers[0]
    data = pickle.dumps(opt)
    assert b"fastlight" not in data  # loadable without fastlight, as the user's pickle would be
    for restored, expected in ((pickle.loads(data), pickle.loads(pickle.dumps(ref_opt))),
                               (copy.deepcopy(opt), copy.deepcopy(ref_opt))):
        assert type(restored) is type(expected)
        assert repr(restored) == repr(expected)
        assert _state_layout(restored.state_dict()) == _state_layout(expected.state_dict())


def test_checkpoint_optimizer_and_scheduler_contents(both):
    (_, _, _, ref_ckpt), (_, _, _, ckpt) = both
    ref_states, states = ref_ckpt["optimizer_states"], ckpt["optimizer_states"]
    assert len(states) == len(ref_states) == 1
    assert states[0]["param_groups"] == ref_states[0]["param_groups"]
    assert _state_layout(states[0]) == _state_layout(ref_states[0])
    assert ckpt["lr_schedulers"] == ref_ckpt["lr_schedulers"]
    for i, s in ref_states[0]["state"].items():
        for k, v in s.items():
            torch.testing.assert_close(torch.as_tensor(states[0]["state"][i][k]), torch.as_tensor(v),
                                       rtol=1e-5, atol=1e-6)


def test_manual_optimization_lightning_optimizer_repr(tmp_path):
    make_opt = OPTIMIZERS["adamw"]
    _, ref_model, _, _ = _fit(pl_ref, tmp_path / "pl", make_opt, manual=True)
    trainer, model, _, _ = _fit(fl, tmp_path / "fl", make_opt, manual=True)
    assert isinstance(trainer.optimizers[0], _FusedMixin)
    assert model.seen["lightning_optimizer_class"] == ref_model.seen["lightning_optimizer_class"]
    assert model.seen["lightning_optimizer_repr"] == ref_model.seen["lightning_optimizer_repr"]


def test_fusing_in_place_keeps_hooks_and_the_scheduler_without_warnings():
    import warnings

    from fastlight.engine.optim import fuse_in_place

    params = [torch.nn.Parameter(torch.randn(5))]
    opt = torch.optim.AdamW(params, lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, 1, 0.5)
    calls = []
    opt.register_step_pre_hook(lambda *a: calls.append("pre"))
    opt.register_step_post_hook(lambda *a: calls.append("post"))
    done, reason = fuse_in_place(opt)
    assert done, reason
    assert isinstance(opt, _FusedMixin) and isinstance(opt, torch.optim.AdamW)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "lr_scheduler.step() before optimizer.step()"
        params[0].grad = torch.ones(5)
        opt.step()
        sched.step()
    assert calls == ["pre", "post"]
    assert opt.param_groups[0]["lr"] == pytest.approx(0.05)
    assert sched.optimizer is opt


@pytest.mark.cuda
def test_adam_state_dict_keeps_step_where_torch_keeps_it_on_cuda(cuda_device):
    from fastlight.engine.optim import fuse_in_place

    if ops.backend(cuda_device) != "native":
        pytest.skip("native CUDA kernels not built")
    ref_params = [torch.nn.Parameter(torch.randn(5, device=cuda_device))]
    params = [torch.nn.Parameter(ref_params[0].detach().clone())]
    ref, opt = torch.optim.Adam(ref_params, lr=0.1), torch.optim.Adam(params, lr=0.1)
    assert fuse_in_place(opt)[0]
    for p, o in ((ref_params[0], ref), (params[0], opt)):
        p.grad = torch.ones_like(p)
        o.step()
    assert _state_layout(opt.state_dict()) == _state_layout(ref.state_dict())
    assert opt.state[params[0]]["step"].device == cuda_device  # the kernels keep reading it on the device
