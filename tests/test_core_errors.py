"""Bad input gets a clear error naming the problem, before training starts where that is possible."""
import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import fastlight as fl
from fastlight.trainer.config import ConfigError


def _data(n=16):
    g = torch.Generator().manual_seed(0)
    return DataLoader(TensorDataset(torch.randn(n, 4, generator=g), torch.randn(n, 1, generator=g)), batch_size=4)


class Model(fl.LightningModule):
    def __init__(self, step=None, optim=None, log_value=None, monitor=None):
        super().__init__()
        self.layer = nn.Linear(4, 1)
        self._step, self._optim, self._log_value, self._monitor = step, optim, log_value, monitor
        self.steps_run = 0

    def training_step(self, batch, batch_idx):
        self.steps_run += 1
        x, y = batch
        loss = nn.functional.mse_loss(self.layer(x), y)
        if self._log_value is not None:
            self.log("bad", self._log_value)
        if self._step is not None:
            return self._step(loss, x)
        return loss

    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        if self._optim is not None:
            return self._optim(opt)
        if self._monitor is not None:
            sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
            return {"optimizer": opt, "lr_scheduler": sched, "monitor": self._monitor}
        return opt

    def train_dataloader(self):
        return _data()


def _trainer(**kw):
    base = dict(max_epochs=1, enable_progress_bar=False, enable_model_summary=False, logger=False,
                enable_checkpointing=False, accelerator="cpu")
    base.update(kw)
    return fl.Trainer(**base)


@pytest.mark.parametrize("bad", [
    lambda opt: "sgd",
    lambda opt: {"lr_scheduler": None},
    lambda opt: 42,
])
def test_unsupported_configure_optimizers_return_fails_before_training(bad):
    model = Model(optim=bad)
    with pytest.raises(ValueError, match="configure_optimizers|optimizer"):
        _trainer().fit(model)
    assert model.steps_run == 0


@pytest.mark.parametrize("conf", [
    lambda opt: {"optimizer": opt, "foo": 1},
    lambda opt: [{"optimizer": opt, "frequency": 2}],
], ids=["dict", "list-of-dicts-with-frequency"])
def test_unsupported_optimizer_dict_keys_warn_and_train_as_in_lightning(conf):
    """Lightning warns (RuntimeWarning) about keys it does not know in an optimizer dict and trains on: code that
    trained there trains here."""
    pl = pytest.importorskip("pytorch_lightning")
    weights = []
    for framework in (pl, fl):
        torch.manual_seed(0)

        class M(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                x, y = batch
                return nn.functional.mse_loss(self.layer(x), y)

            def configure_optimizers(self):
                return conf(torch.optim.SGD(self.parameters(), lr=0.1))

            def train_dataloader(self):
                return _data()

        model = M()
        with pytest.warns(RuntimeWarning, match=r"Found unsupported keys in the optimizer configuration: \{.+\}"):
            framework.Trainer(max_epochs=1, barebones=True, accelerator="cpu", devices=1).fit(model)
        weights.append(model.layer.weight.detach().clone())
    assert torch.equal(weights[0], weights[1])


def _parsed_like_lightning(framework, configure, automatic=True, **module_attrs):
    """`core.optimizer._init_optimizers_and_lr_schedulers` of `framework` on a module whose configure_optimizers is
    `configure(params)`: (optimizer classes, scheduler configs as plain tuples), or the exception (type, message)."""
    optimizer_mod = __import__(f"{framework.__name__}.core.optimizer", fromlist=["_"])

    class M(framework.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)
            self.automatic_optimization = automatic

        def configure_optimizers(self):
            return configure(self.parameters())

    model = M()
    for name, value in module_attrs.items():
        setattr(model, name, value)
    model.trainer = framework.Trainer(barebones=True, accelerator="cpu", devices=1)
    try:
        optimizers, configs = optimizer_mod._init_optimizers_and_lr_schedulers(model)
    except Exception as error:
        return type(error), str(error)
    return ([type(o).__name__ for o in optimizers],
            [(type(c.scheduler).__name__, c.interval, c.frequency, c.reduce_on_plateau, c.monitor, c.strict, c.name)
             for c in configs])


class _StepOnly:
    """A scheduler with the optimizer attached and a step, but nothing a checkpoint could save."""

    def __init__(self, optimizer):
        self.optimizer = optimizer

    def step(self):
        pass


class _CustomStepSignature(_StepOnly):
    def step(self, metric):  # not torch's step(): needs lr_scheduler_step
        pass

    def state_dict(self):
        return {}

    def load_state_dict(self, state_dict):
        pass


def _sgd(params):
    return torch.optim.SGD(params, lr=0.1)


def _two(params):
    params = list(params)
    return torch.optim.SGD(params, lr=0.1), torch.optim.Adam(params, lr=0.1)


def _with(scheduler_entry, **extra):
    def configure(params):
        opt = _sgd(params)
        return {"optimizer": opt, "lr_scheduler": scheduler_entry(opt), **extra}
    return configure


@pytest.mark.parametrize("case", [
    dict(configure=_sgd),
    dict(configure=_two, automatic=False),
    dict(configure=lambda p: [_sgd(p)]),
    dict(configure=lambda p: (lambda o: ([o], [torch.optim.lr_scheduler.StepLR(o, 2)]))(_sgd(p))),
    dict(configure=_with(lambda o: {"scheduler": torch.optim.lr_scheduler.StepLR(o, 2), "interval": "step",
                                    "name": "s"})),
    dict(configure=_with(lambda o: torch.optim.lr_scheduler.ReduceLROnPlateau(o), monitor="val")),
    dict(configure=_with(lambda o: {"scheduler": torch.optim.lr_scheduler.StepLR(o, 2), "monitor": "m"}),
         automatic=False),
    dict(configure=_with(lambda o: {"scheduler": torch.optim.lr_scheduler.ReduceLROnPlateau(o)})),
    dict(configure=_with(_StepOnly)),
    dict(configure=_with(_CustomStepSignature)),
    dict(configure=_with(_CustomStepSignature), lr_scheduler_step=lambda *args: None),  # set on the instance
    dict(configure=_two),
], ids=["optimizer", "tuple-manual", "list", "two-lists", "scheduler-dict", "plateau-monitor", "manual-ignored-keys",
        "plateau-without-monitor", "scheduler-without-state-dict", "custom-step-signature",
        "custom-step-signature-instance-override", "two-optimizers-automatic"])
def test_init_optimizers_and_lr_schedulers_parses_and_refuses_as_lightning(case):
    """Lightning's `core.optimizer._init_optimizers_and_lr_schedulers` (what a fit runs on `configure_optimizers`,
    and what some libraries call themselves) gives the same optimizers and scheduler configs, or the same error."""
    pl = pytest.importorskip("pytorch_lightning")
    case = dict(case)
    configure, automatic = case.pop("configure"), case.pop("automatic", True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        theirs = _parsed_like_lightning(pl, configure, automatic, **case)
        ours = _parsed_like_lightning(fl, configure, automatic, **case)
    if isinstance(theirs[0], type):  # an error: the same message; the type is Lightning's (or a subclass of its name)
        assert isinstance(ours[0], type) and ours[1] == theirs[1], (ours, theirs)
        assert theirs[0].__name__ in {base.__name__ for base in ours[0].__mro__}, (ours, theirs)
    else:
        assert ours == theirs


def test_lightning_scheduler_helpers_warn_as_lightning():
    """`_configure_optimizers` warns about unknown optimizer-dict keys and `_configure_schedulers_automatic_opt` about
    a OneCycleLR stepped per epoch, with Lightning's category and text."""
    from fastlight.core.optimizer import _configure_optimizers, _configure_schedulers_automatic_opt

    opt = torch.optim.Adam(nn.Linear(2, 1).parameters())
    with pytest.warns(RuntimeWarning, match=r"Found unsupported keys in the optimizer configuration: \{.+\}"):
        optimizers, schedulers, monitor = _configure_optimizers({"optimizer": opt, "foo": 1})
    assert optimizers == [opt] and schedulers == [] and monitor is None
    one_cycle = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=0.01, total_steps=3)
    with pytest.warns(RuntimeWarning, match="Are you sure you didn't mean 'interval': 'step'?"):
        (config,) = _configure_schedulers_automatic_opt([{"scheduler": one_cycle}], None)
    assert config.scheduler is one_cycle and config.interval == "epoch"


def test_scheduler_dict_without_scheduler_key_is_named():
    model = Model(optim=lambda opt: {"optimizer": opt, "lr_scheduler": {"interval": "step"}})
    with pytest.raises(ValueError, match='"scheduler"'):
        _trainer().fit(model)


def test_scheduler_interval_must_be_step_or_epoch():
    model = Model(optim=lambda opt: {"optimizer": opt, "lr_scheduler": {
        "scheduler": torch.optim.lr_scheduler.StepLR(opt, 1), "interval": "batch"}})
    with pytest.raises(ValueError, match='"interval"'):
        _trainer().fit(model)


def test_plateau_without_monitor_is_rejected_before_training():
    model = Model(optim=lambda opt: [[opt], [torch.optim.lr_scheduler.ReduceLROnPlateau(opt)]])
    with pytest.raises(ValueError, match="monitor"):
        _trainer().fit(model)
    assert model.steps_run == 0


def test_plateau_monitor_never_logged_names_the_key():
    model = Model(monitor="val_acc")
    # Lightning's type (a MisconfigurationException, no KeyError)
    with pytest.raises(fl.utilities.exceptions.MisconfigurationException, match="val_acc"):
        _trainer().fit(model)


def test_training_step_dict_without_loss():
    with pytest.raises(ValueError, match="'loss' key"):
        _trainer().fit(Model(step=lambda loss, x: {"los": loss}))


def test_training_step_non_scalar_loss():
    with pytest.raises(ValueError, match="scalar loss"):
        _trainer().fit(Model(step=lambda loss, x: x.sum(1)))


def test_training_step_bad_return_type():
    with pytest.raises(ValueError, match="must return a Tensor, a dict, or None"):
        _trainer().fit(Model(step=lambda loss, x: [loss]))


def test_logging_non_scalar_value():
    with pytest.raises(ValueError, match="single element"):
        _trainer().fit(Model(log_value=torch.ones(3)))


def test_logging_unsupported_type():
    with pytest.raises(ValueError, match="cannot be logged"):
        _trainer().fit(Model(log_value="text"))


def test_logging_in_a_hook_that_forbids_it():
    class M(Model):
        def on_fit_start(self):
            self.log("x", 1.0)

    with pytest.raises(RuntimeError, match="on_fit_start"):
        _trainer().fit(M())


def test_logging_epoch_level_hook_with_on_step_true():
    class M(Model):
        def on_train_epoch_end(self):
            self.log("x", 1.0, on_step=True)

    with pytest.raises(RuntimeError, match="on_step=True"):
        _trainer().fit(M())


@pytest.mark.parametrize("kw, needle", [
    (dict(precision="8-mixed"), "Precision '8-mixed'"),
    (dict(precision="fp16"), "Precision 'fp16'"),
    (dict(accelerator="quantum"), "accelerator='quantum'"),
    (dict(strategy="magic"), "strategy='magic'"),
    (dict(limit_train_batches=1.5), "limit_train_batches=1.5"),
    (dict(limit_val_batches=-1), "limit_val_batches=-1"),
    (dict(limit_test_batches="all"), "limit_test_batches='all'"),
    (dict(limit_predict_batches=2.5), "limit_predict_batches=2.5"),
    (dict(accumulate_grad_batches=0), "accumulate_grad_batches=0"),
    (dict(gradient_clip_algorithm="l1"), "gradient_clip_algorithm='l1'"),
    (dict(val_check_interval=1.5), "val_check_interval=1.5"),
    (dict(check_val_every_n_epoch=0), "check_val_every_n_epoch=0"),
    (dict(devices=0), "devices=0"),
    (dict(max_epochs=-5), "max_epochs=-5"),
])
def test_bad_trainer_flags_fail_at_construction(kw, needle):
    with pytest.raises(ConfigError) as info:
        _trainer(**kw)
    assert needle in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU error")
def test_gpu_requested_without_cuda():
    with pytest.raises(ConfigError, match="no CUDA device"):
        fl.Trainer(accelerator="gpu", logger=False)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA (on CPU, devices=N is N processes)")
def test_devices_more_than_available():
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match="devices"):
        fl.Trainer(accelerator="cuda", devices=n + 1, logger=False)


def test_cpu_devices_are_processes_of_a_ddp_run():
    from fastlight.strategies import DDPStrategy

    trainer = fl.Trainer(accelerator="cpu", devices=4, logger=False, max_epochs=1)
    assert isinstance(trainer.strategy, DDPStrategy)
    assert (trainer.world_size, trainer.num_devices, trainer.num_nodes) == (4, 4, 1)
    assert trainer.is_global_zero and trainer.global_rank == 0


def test_no_train_dataloader_fails_before_training():
    class NoData(fl.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            raise AssertionError("must not run")

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    with pytest.raises(ValueError, match="train_dataloader"):
        _trainer().fit(NoData())


def test_train_dataloader_returning_none():
    class NoneData(Model):
        def train_dataloader(self):
            return None

    with pytest.raises(ValueError, match="No training data"):
        _trainer().fit(NoneData())


def test_fractional_limit_below_one_batch():
    with pytest.raises(ConfigError, match="limit_train_batches"):
        _trainer(limit_train_batches=0.1).fit(Model())


def test_val_check_interval_larger_than_epoch():
    class WithVal(Model):
        def validation_step(self, batch, batch_idx):
            pass

        def val_dataloader(self):
            return _data()

    with pytest.raises(ValueError, match="val_check_interval"):
        _trainer(val_check_interval=10).fit(WithVal())


def test_multiple_optimizers_need_manual_optimization():
    with pytest.raises(RuntimeError, match="manual optimization"):  # Lightning's type
        _trainer().fit(Model(optim=lambda opt: [opt, torch.optim.Adam(opt.param_groups[0]["params"])]))


def test_manual_backward_in_automatic_optimization():
    def step(loss, x):
        pass

    class M(Model):
        def training_step(self, batch, batch_idx):
            loss = super().training_step(batch, batch_idx)
            self.manual_backward(loss)

    with pytest.raises(RuntimeError, match="automatic_optimization"):
        _trainer().fit(M())


def test_optimizer_step_override_or_optimizer_that_never_runs_the_closure_is_a_misconfiguration():
    """Lightning raises MisconfigurationException for both: an optimizer_step hook that never calls the closure,
    and an optimizer whose step() drops it."""
    from fastlight.utilities.exceptions import MisconfigurationException

    class M(Model):
        def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
            pass  # forgot optimizer.step(closure=optimizer_closure)

    with pytest.raises(MisconfigurationException, match="closure hasn't been executed"):
        _trainer().fit(M())

    class BrokenSGD(torch.optim.SGD):
        def step(self, closure=None):
            return super().step()  # forgot to pass the closure on

    class N(Model):
        def configure_optimizers(self):
            return BrokenSGD(self.parameters(), lr=0.1)

    with pytest.raises(MisconfigurationException, match="closure hasn't been executed"):
        _trainer().fit(N())


def test_optimizer_step_override_with_closure_runs_training_step_inside_step():
    order = []

    class M(Model):
        def training_step(self, batch, batch_idx):
            order.append("training_step")
            return super().training_step(batch, batch_idx)

        def optimizer_step(self, epoch, batch_idx, optimizer, optimizer_closure=None):
            order.append("before step")
            optimizer.step(closure=optimizer_closure)
            order.append("after step")

    _trainer(limit_train_batches=2).fit(M())
    assert order == ["before step", "training_step", "after step"] * 2


def test_training_step_may_return_any_mapping_with_a_loss_like_lightning():
    """Not only a dict: any Mapping's 'loss' is the loss; one without it is refused with Lightning's words."""
    from collections.abc import Mapping

    class Out(Mapping):
        def __init__(self, **d):
            self.d = d

        def __iter__(self):
            return iter(self.d)

        def __len__(self):
            return len(self.d)

        def __getitem__(self, key):
            return self.d[key]

    model = Model(step=lambda loss, x: Out(loss=loss, extra=x.sum()))
    before = model.layer.weight.detach().clone()
    _trainer().fit(model)
    assert model.steps_run == 4 and not torch.equal(model.layer.weight, before)
    with pytest.raises(fl.utilities.exceptions.MisconfigurationException, match="the 'loss' key needs to be present"):
        _trainer().fit(Model(step=lambda loss, x: Out(a=loss)))


@pytest.mark.parametrize("world_size", [1, 2])
def test_skipping_training_step_in_a_distributed_run_raises_like_lightning(world_size):
    """training_step returning None skips the step on one process; with several processes Lightning refuses it.
    The single-device strategy's world_size is a plain attribute there, which tests set to mock a distributed run."""
    pl = pytest.importorskip("pytorch_lightning")

    for framework in (pl, fl):
        class Skipping(framework.LightningModule):
            def __init__(self):
                super().__init__()
                self.layer = nn.Linear(4, 1)

            def training_step(self, batch, batch_idx):
                return None

            def configure_optimizers(self):
                return torch.optim.SGD(self.parameters(), lr=0.1)

            def train_dataloader(self):
                return _data()

        trainer = framework.Trainer(max_steps=1, barebones=True, accelerator="cpu", devices=1)
        trainer.strategy.world_size = world_size
        assert trainer.world_size == world_size
        if world_size > 1:
            with pytest.raises(RuntimeError, match="Skipping the `training_step` .* is not supported"):
                trainer.fit(Skipping())
        else:
            trainer.fit(Skipping())
