"""Exceptions, warnings and info lines as Lightning's, side by side: the same user code under pytorch_lightning and
fastlight raises an error `except MisconfigurationException:` catches, warns with the same category and text users
filter on, and logs the same info lines."""
import contextlib
import logging
import warnings

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import fastlight
import pytorch_lightning as pl
from fastlight.utilities.exceptions import MisconfigurationException as FastMisconfiguration
from fastlight.utilities.warnings import PossibleUserWarning as FastPossibleUserWarning
from pytorch_lightning.utilities.exceptions import MisconfigurationException as PLMisconfiguration
from pytorch_lightning.utilities.warnings import PossibleUserWarning as PLPossibleUserWarning

LIBS = {"lightning": (pl, PLMisconfiguration, PLPossibleUserWarning),
        "fastlight": (fastlight, FastMisconfiguration, FastPossibleUserWarning)}


def _loader(n=8, workers=0):
    return DataLoader(TensorDataset(torch.randn(n, 4)), batch_size=4, num_workers=workers)


def _model_cls(lib, **methods):
    class Model(lib.LightningModule):
        def __init__(self):
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch, batch_idx):
            return self.layer(batch[0]).pow(2).mean()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.1)

    for name, fn in methods.items():
        setattr(Model, name, fn)
    return Model


def _trainer(lib, **kw):
    defaults = dict(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                    enable_model_summary=False)
    defaults.update(kw)
    return lib.Trainer(**defaults)


class _Lines(logging.Handler):
    def __init__(self):
        super().__init__(logging.DEBUG)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


@contextlib.contextmanager
def info_lines():
    """The messages both libraries log at INFO (their loggers may not propagate to caplog's root handler)."""
    handler = _Lines()
    names = ("pytorch_lightning", "lightning_fabric", "lightning.pytorch")  # fastlight logs on Lightning's names
    for name in names:
        logging.getLogger(name).addHandler(handler)
    try:
        yield handler.lines
    finally:
        for name in names:
            logging.getLogger(name).removeHandler(handler)


# ------------------------------------------------------------------------------------------------ exceptions
def _bad_limit(lib):
    _trainer(lib, limit_train_batches=1.5)


def _no_loss_key(lib):
    model = _model_cls(lib, training_step=lambda self, batch, batch_idx: {"not_loss": self.layer(batch[0]).sum()})()
    _trainer(lib).fit(model, _loader())


def _bad_optimizer_config(lib):
    model = _model_cls(lib, configure_optimizers=lambda self: "not an optimizer")()
    _trainer(lib).fit(model, _loader())


def _log_outside_a_hook(lib):
    def training_step(self, batch, batch_idx):
        loss = self.layer(batch[0]).pow(2).mean()
        self.log("x", loss, on_step=False, on_epoch=False)
        return loss

    _trainer(lib).fit(_model_cls(lib, training_step=training_step)(), _loader())


def _manual_optimization_with_clipping(lib):
    def init(self):
        lib.LightningModule.__init__(self)
        self.layer = torch.nn.Linear(4, 1)
        self.automatic_optimization = False

    _trainer(lib, gradient_clip_val=1.0).fit(_model_cls(lib, __init__=init)(), _loader())


def _clip_value_differs_from_the_trainers(lib):
    def configure_gradient_clipping(self, optimizer, gradient_clip_val=None, gradient_clip_algorithm=None):
        self.clip_gradients(optimizer, gradient_clip_val=0.01)

    model = _model_cls(lib, configure_gradient_clipping=configure_gradient_clipping)()
    _trainer(lib, gradient_clip_val=1e-4).fit(model, _loader())


@pytest.mark.parametrize("case", [_bad_limit, _no_loss_key, _bad_optimizer_config, _log_outside_a_hook,
                                  _manual_optimization_with_clipping, _clip_value_differs_from_the_trainers],
                         ids=lambda f: f.__name__.strip("_"))
def test_configuration_errors_are_misconfiguration_exceptions_in_both(case):
    for name, (lib, misconfiguration, _) in LIBS.items():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(misconfiguration):
                case(lib)


def test_fastlight_error_classes_keep_their_builtin_bases():
    from fastlight.trainer.config import ConfigError
    from fastlight.trainer.fit_loop import TrainingStepError
    from fastlight.core.optimizer_config import OptimizerConfigError
    from fastlight.trainer.results import LoggingError
    from fastlight.trainer.trainer import MisconfigurationError

    for cls, builtin in ((ConfigError, ValueError), (TrainingStepError, ValueError), (OptimizerConfigError, ValueError),
                         (MisconfigurationError, ValueError), (LoggingError, RuntimeError)):
        assert issubclass(cls, FastMisconfiguration) and issubclass(cls, builtin), cls


def test_deepspeed_strategy_without_the_package_is_a_clear_error():
    from fastlight.strategies import DeepSpeedStrategy
    from fastlight.strategies.deepspeed import _DEEPSPEED_AVAILABLE

    if _DEEPSPEED_AVAILABLE:
        pytest.skip("deepspeed is installed here")
    with pytest.raises(FastMisconfiguration, match=r"strategy='deepspeed'.*`deepspeed` package is not installed"):
        _trainer(fastlight, strategy="deepspeed")
    with pytest.raises(FastMisconfiguration, match="DeepSpeedStrategy"):
        DeepSpeedStrategy()


# ------------------------------------------------------------------------------------------------ warnings
def _warned(category, match, fn):
    """Run fn; return the matching warning's text (the test fails when none of `category` matches)."""
    with pytest.warns(category, match=match) as record:
        fn()
    return [str(w.message) for w in record if issubclass(w.category, category) and match in str(w.message)][0]


@pytest.mark.parametrize("lib_name", list(LIBS))
def test_max_epochs_not_set_is_a_possible_user_warning(lib_name):
    lib, _, possible = LIBS[lib_name]
    text = _warned(possible, "`max_epochs` was not set", lambda: _trainer(lib, max_epochs=None, limit_train_batches=1)
                   .fit(_model_cls(lib)(), _loader()))
    assert text == "`max_epochs` was not set. Setting it to 1000 epochs. To train without an epoch limit, set" \
                   " `max_epochs=-1`."


def test_validation_step_without_loader_warns_the_same():
    texts = []
    for lib, _, possible in LIBS.values():
        model = _model_cls(lib, validation_step=lambda self, batch, batch_idx: None)()
        texts.append(_warned(possible, "have no `val_dataloader`", lambda: _trainer(lib).fit(model, _loader())))
    assert texts[0] == texts[1]


def test_few_dataloader_workers_warns_the_same(monkeypatch):
    import lightning_fabric.utilities.data as fabric_data

    import fastlight.utilities.data as fast_data

    monkeypatch.setattr(fabric_data, "_num_cpus_available", lambda: 8)
    monkeypatch.setattr(fast_data, "_num_cpus_available", lambda: 8)
    texts = []
    for lib, _, possible in LIBS.values():
        texts.append(_warned(possible, "does not have many workers",
                             lambda: _trainer(lib, limit_train_batches=1).fit(_model_cls(lib)(), _loader())))
    assert texts[0] == texts[1]
    assert "The 'train_dataloader' does not have many workers" in texts[1] and "num_workers=7" in texts[1]


def test_fewer_batches_than_log_every_n_steps_warns_the_same(tmp_path):
    texts = []
    for lib, _, possible in LIBS.values():
        def run():
            logger = lib.loggers.CSVLogger(tmp_path / lib.__name__)
            _trainer(lib, logger=logger, log_every_n_steps=50).fit(_model_cls(lib)(), _loader())

        texts.append(_warned(possible, "smaller than the logging interval", run))
    assert texts[0] == texts[1]


def test_possible_user_warnings_can_be_disabled():
    fastlight.disable_possible_user_warnings()
    try:
        with warnings.catch_warnings(record=True) as record:
            warnings.simplefilter("default")
            fastlight.disable_possible_user_warnings()
            _trainer(fastlight, max_epochs=None)
        assert not [w for w in record if issubclass(w.category, FastPossibleUserWarning)]
    finally:
        warnings.filters[:] = [f for f in warnings.filters if f[2] is not FastPossibleUserWarning]


# ------------------------------------------------------------------------------------------------ info lines
def test_trainer_init_logs_the_same_limit_and_device_lines():
    kw = dict(limit_train_batches=1, limit_val_batches=1.0, limit_test_batches=1, val_check_interval=1.0,
              overfit_batches=0.0)
    seen = {}
    for name, (lib, _, _) in LIBS.items():
        with info_lines() as lines, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(lib, **kw)
        seen[name] = [line for line in lines if line.startswith(("`Trainer(", "GPU available", "TPU available"))]
    expected = {
        "`Trainer(limit_train_batches=1)` was configured so 1 batch per epoch will be used.",
        "`Trainer(limit_test_batches=1)` was configured so 1 batch will be used.",
        "`Trainer(val_check_interval=1.0)` was configured so validation will run at the end of the training epoch.",
    }
    for line in expected:
        assert line in seen["fastlight"], (line, seen)
        # Lightning ends its `=1.0` lines with two periods, fastlight with one (docs/compatibility.md)
        assert line in seen["lightning"] or line + "." in seen["lightning"], (line, seen)
    # the GPU/TPU lines are identical (whatever this machine has)
    assert [s for s in seen["lightning"] if "available" in s] == [s for s in seen["fastlight"] if "available" in s]
    assert "`Trainer(limit_val_batches=1.0)` was configured so 100% of the batches will be used." in seen["fastlight"]


def test_fit_stopped_line_is_logged_by_both():
    for lib, _, _ in LIBS.values():
        with info_lines() as lines, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _trainer(lib, max_epochs=2).fit(_model_cls(lib)(), _loader())
        assert "`Trainer.fit` stopped: `max_epochs=2` reached." in lines, lines


def test_console_lines_go_to_lightnings_logger_names_so_its_documented_configuration_works():
    """Lightning documents configuring its console output through the logging tree at its package's name: the level at
    the top, handlers per module. fastlight logs each line on `lightning.pytorch.<module>`, as Lightning 2.x does (the
    pytorch_lightning package uses `pytorch_lightning.<module>`), so that configuration keeps working."""
    for name, (lib, _, _) in LIBS.items():
        root = "pytorch_lightning" if name == "lightning" else "lightning.pytorch"
        summary, rank_zero = _Lines(), _Lines()
        logging.getLogger(root + ".callbacks.model_summary").addHandler(summary)
        logging.getLogger(root + ".utilities.rank_zero").addHandler(rank_zero)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                # the plain summary named (Lightning draws its default one with rich when rich is installed)
                _trainer(lib, enable_model_summary=True, callbacks=[lib.callbacks.ModelSummary()]).fit(
                    _model_cls(lib)(), _loader())
                assert len(summary.lines) == 1 and "Total params" in summary.lines[0], (name, summary.lines)
                assert "`Trainer.fit` stopped: `max_epochs=1` reached." in rank_zero.lines, (name, rank_zero.lines)
                summary.lines.clear()
                rank_zero.lines.clear()
                logging.getLogger(root).setLevel(logging.ERROR)  # Lightning's documented way to silence it
                _trainer(lib, enable_model_summary=True, callbacks=[lib.callbacks.ModelSummary()]).fit(
                    _model_cls(lib)(), _loader())
            assert summary.lines == rank_zero.lines == [], name
        finally:
            logging.getLogger(root).setLevel(logging.INFO)
            logging.getLogger(root + ".callbacks.model_summary").removeHandler(summary)
            logging.getLogger(root + ".utilities.rank_zero").removeHandler(rank_zero)


_FIT_SCRIPT = """
import logging, sys, warnings
warnings.simplefilter("ignore")
import torch
from torch.utils.data import DataLoader
import {lib} as pl
if sys.argv[1] == "quiet":
    logging.getLogger("{root}").setLevel(logging.ERROR)

class Model(pl.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch).sum()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)

pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
           enable_model_summary=False).fit(Model(), DataLoader(torch.randn(8, 4), batch_size=4))
"""


def test_console_lines_are_printed_once_on_stderr_and_silenced_like_lightnings(tmp_path):
    """In a plain script (no logging configured), the info lines reach stderr once; setting the package logger's level
    silences them. Both as under pytorch_lightning."""
    import subprocess
    import sys

    stderr = {}
    for lib, root in (("pytorch_lightning", "pytorch_lightning"), ("fastlight", "lightning.pytorch")):
        script = tmp_path / f"{lib}_fit.py"
        script.write_text(_FIT_SCRIPT.format(lib=lib, root=root))
        for mode in ("default", "quiet"):
            run = subprocess.run([sys.executable, str(script), mode], capture_output=True, text=True, timeout=300,
                                 cwd=tmp_path)
            assert run.returncode == 0, run.stderr
            stderr[lib, mode] = run.stderr
    line = "`Trainer.fit` stopped: `max_epochs=1` reached."
    for lib in ("pytorch_lightning", "fastlight"):
        assert stderr[lib, "default"].count(line) == 1, (lib, stderr[lib, "default"])
        assert stderr[lib, "default"].count("GPU available:") == 1, (lib, stderr[lib, "default"])
        assert line not in stderr[lib, "quiet"] and "GPU available" not in stderr[lib, "quiet"], stderr[lib, "quiet"]


@pytest.mark.parametrize(("kw", "phrase"), [
    ({"limit_val_batches": 1.2}, "passed invalid value"),
    ({"overfit_batches": -0.1}, "passed invalid value"),
    ({"val_check_interval": 1.2}, "passed invalid value"),
    ({"fast_dev_run": -1}, "should be >= 0"),
    ({"reload_dataloaders_every_n_epochs": -1}, "should be an int >"),
])
def test_invalid_flag_messages_carry_lightnings_wording(kw, phrase):
    """The phrases Lightning's errors have (and that code matching them looks for), in both libraries."""
    for lib, misconfiguration, _ in LIBS.values():
        with pytest.raises(misconfiguration, match=phrase):
            _trainer(lib, **kw)


# ------------------------------------------------------------------------------------------------ optimizers
def _foreign_scheduler_optimizer(lib):
    other = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
    model = _model_cls(lib, configure_optimizers=lambda self: (
        [torch.optim.SGD(self.parameters(), lr=0.1)], [torch.optim.lr_scheduler.StepLR(other, 1)]))()
    _trainer(lib).fit(model, _loader())


def _strict_plateau_monitor_missing(lib):
    def configure_optimizers(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "monitor": "giraffe", "strict": True}}

    _trainer(lib).fit(_model_cls(lib, configure_optimizers=configure_optimizers)(), _loader())


def _two_optimizers_automatic(lib):
    model = _model_cls(lib, configure_optimizers=lambda self: (
        torch.optim.SGD(self.parameters(), lr=0.1), torch.optim.SGD(self.parameters(), lr=0.1)))()
    _trainer(lib).fit(model, _loader())


def _optimizer_idx_in_training_step(lib):
    def training_step(self, batch, batch_idx, optimizer_idx):
        return self.layer(batch[0]).pow(2).mean()

    _trainer(lib).fit(_model_cls(lib, training_step=training_step)(), _loader())


@pytest.mark.parametrize(("case", "error", "phrase"), [
    (_foreign_scheduler_optimizer, "misconfiguration", "attached with an optimizer that wasn't returned"),
    (_strict_plateau_monitor_missing, "misconfiguration",
     r"ReduceLROnPlateau conditioned on metric .* which is not available\. Available metrics are:"),
    (_two_optimizers_automatic, RuntimeError, "multiple optimizers is only supported with manual optimization"),
    (_optimizer_idx_in_training_step, RuntimeError, "Remove the `optimizer_idx` argument from `training_step`"),
], ids=lambda v: v.__name__.strip("_") if callable(v) and not isinstance(v, type) else None)
def test_optimizer_configuration_errors_carry_lightnings_type_and_wording(case, error, phrase):
    for lib, misconfiguration, _ in LIBS.values():
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with pytest.raises(misconfiguration if error == "misconfiguration" else error, match=phrase):
                case(lib)


def test_manual_optimization_schedulers_like_lightning():
    """Manual optimization: a scheduler dict's loop-stepping keys are dropped with Lightning's RuntimeWarning (its
    interval stays, for LearningRateMonitor), and a scheduler outside torch's API is accepted (the user steps it)."""

    class Custom:
        def __init__(self, optimizer):
            self.optimizer = optimizer

        def state_dict(self):
            return {}

        def load_state_dict(self, state):
            pass

    def init(self):
        type(self).__mro__[1].__init__(self)  # the library's LightningModule
        self.layer = torch.nn.Linear(4, 1)
        self.automatic_optimization = False

    def training_step(self, batch, batch_idx):
        opt = self.optimizers()
        opt.zero_grad()
        self.manual_backward(self.layer(batch[0]).pow(2).mean())
        opt.step()

    def plateau_dict(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt)
        return [opt], [{"scheduler": sched, "monitor": "train_loss", "interval": "step"}]

    def custom(self):
        opt = torch.optim.SGD(self.parameters(), lr=0.1)
        return [opt], [Custom(opt)]

    for lib, _, _ in LIBS.values():
        model = _model_cls(lib, __init__=init, training_step=training_step, configure_optimizers=plateau_dict)()
        trainer = _trainer(lib)
        with pytest.warns(RuntimeWarning, match=r"\['monitor'\], but the keys will be ignored"):
            trainer.fit(model, _loader())
        assert trainer.lr_scheduler_configs[0].interval == "step"
        model = _model_cls(lib, __init__=init, training_step=training_step, configure_optimizers=custom)()
        trainer = _trainer(lib)
        trainer.fit(model, _loader())
        assert isinstance(trainer.lr_scheduler_configs[0].scheduler, Custom)
