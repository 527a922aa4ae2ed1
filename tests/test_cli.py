"""fastlight.cli: LightningCLI, LightningArgumentParser, SaveConfigCallback, side by side with pytorch_lightning.cli.

The same user classes are built on both frameworks (`_classes(pl)`) and driven by the same arguments; the parsed
configs, the printed configs, the saved config files and the trained weights (fused=False) are compared.
"""
import inspect
import os
import subprocess
import sys
import textwrap
import warnings
from contextlib import redirect_stdout
from io import StringIO
from pathlib import Path
from unittest import mock

import pytest
import torch
import yaml
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

pytest.importorskip("jsonargparse")  # the test extra installs it; fastlight.cli itself only needs it when used

import fastlight  # noqa: E402
import pytorch_lightning  # noqa: E402
from fastlight.cli import _keep_none, LightningArgumentParser, LightningCLI, SaveConfigCallback, instantiate_class  # noqa: E402
from fastlight.utilities.exceptions import MisconfigurationException  # noqa: E402
from pytorch_lightning import cli as pl_cli  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
# fastlight's own Trainer flags (fused, flat_grads, ...): what fastlight's Trainer takes and Lightning's does not
FASTLIGHT_ONLY_TRAINER_KEYS = set(inspect.signature(fastlight.Trainer).parameters) - set(
    inspect.signature(pytorch_lightning.Trainer).parameters
)


def _classes(pl):
    class Model(pl.LightningModule):
        def __init__(self, hidden: int = 8, lr: float = 0.1, activation: str = "relu"):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(32, hidden), nn.ReLU() if activation == "relu" else nn.Tanh(), nn.Linear(hidden, 2))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, batch_idx):
            loss = self(batch[0]).pow(2).mean()
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, batch_idx):
            self.log("val_loss", self(batch[0]).pow(2).mean())

        def test_step(self, batch, batch_idx):
            self.log("test_loss", self(batch[0]).pow(2).mean())

        def predict_step(self, batch, batch_idx):
            return self(batch[0])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    class Data(pl.LightningDataModule):
        def __init__(self, batch_size: int = 4, length: int = 32):
            super().__init__()
            self.batch_size = batch_size
            self.length = length

        def _loader(self, offset):
            g = torch.Generator().manual_seed(100 + offset)
            return DataLoader(TensorDataset(torch.randn(self.length, 32, generator=g)), batch_size=self.batch_size)

        def train_dataloader(self):
            return self._loader(0)

        def val_dataloader(self):
            return self._loader(1)

        def test_dataloader(self):
            return self._loader(2)

        def predict_dataloader(self):
            return self._loader(3)

    return Model, Data


@pytest.fixture(autouse=True)
def _no_command_line_arguments():
    """The CLIs here get `args`; pytest's own sys.argv would make them warn about getting both."""
    with mock.patch.object(sys, "argv", ["prog"]):
        yield


def _cli_module(pl):
    return pl_cli if pl is pytorch_lightning else fastlight.cli


def _quiet_trainer(tmp_path, pl):
    defaults = {"enable_progress_bar": False, "enable_model_summary": False, "logger": False,
                "default_root_dir": str(tmp_path)}
    if pl is fastlight:
        defaults["fused"] = False
    return defaults


def _run_cli(pl, args, tmp_path, **kwargs):
    Model, Data = _classes(pl)
    kwargs.setdefault("trainer_defaults", _quiet_trainer(tmp_path, pl))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return _cli_module(pl).LightningCLI(Model, Data, args=args, **kwargs)


def _print_config(pl, args, tmp_path, **kwargs):
    out = StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exc:
        _run_cli(pl, args + ["--print_config"], tmp_path, **kwargs)
    assert exc.value.code in (0, None)
    return out.getvalue()


def _without_fastlight_only(config: dict) -> dict:
    config = dict(config)
    trainer = config.get("trainer")
    if isinstance(trainer, dict):
        config["trainer"] = {k: v for k, v in trainer.items() if k not in FASTLIGHT_ONLY_TRAINER_KEYS}
    return config


# -- import and installation ------------------------------------------------------------------------------------------
def test_import_fastlight_does_not_import_jsonargparse():
    code = "import sys, fastlight, fastlight.demos; print('jsonargparse' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


def test_missing_jsonargparse_gives_the_pip_command():
    code = textwrap.dedent("""
        import sys
        sys.modules["jsonargparse"] = None  # as if it were not installed
        import fastlight.cli as cli  # the module imports without it
        for make in (lambda: cli.LightningArgumentParser(), lambda: cli.LightningCLI(run=False, args=[])):
            try:
                make()
            except ModuleNotFoundError as e:
                print("ERR", e)
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stdout.splitlines() if line.startswith("ERR")]
    assert len(lines) == 2, out.stdout
    for line in lines:
        assert "jsonargparse is not installed" in line and "pip install 'fastlight[cli]'" in line


# -- parsing: side by side ----------------------------------------------------------------------------------------------
def test_print_config_has_lightnings_keys_plus_fastlights_trainer_flags(tmp_path):
    args = ["fit", "--model.hidden=16", "--data.batch_size=2", "--trainer.max_epochs=3"]
    ours = yaml.safe_load(_print_config(fastlight, args, tmp_path, trainer_defaults={}))
    theirs = yaml.safe_load(_print_config(pytorch_lightning, args, tmp_path, trainer_defaults={}))
    assert set(ours["trainer"]) - set(theirs["trainer"]) == FASTLIGHT_ONLY_TRAINER_KEYS
    assert _without_fastlight_only(ours) == theirs  # same keys, same values, same order-insensitive content
    assert list(ours) == list(theirs)  # top-level order too
    assert ours["model"] == {"hidden": 16, "lr": 0.1, "activation": "relu"}
    assert ours["trainer"]["fused"] is True


def test_print_config_output_parses_back_and_runs(tmp_path):
    printed = _print_config(fastlight, ["fit", "--model.hidden=4", "--trainer.max_steps=2", "--seed_everything=7"],
                            tmp_path)
    config_file = tmp_path / "printed.yaml"
    config_file.write_text(printed)
    cli = _run_cli(fastlight, ["fit", "--config", str(config_file)], tmp_path, save_config_callback=None)
    assert cli.trainer.global_step == 2
    assert cli.model.hparams.hidden == 4
    reprinted = _print_config(fastlight, ["fit", "--config", str(config_file)], tmp_path)
    assert yaml.safe_load(reprinted) == yaml.safe_load(printed)


def test_same_config_file_same_parsed_config_as_lightning(tmp_path):
    config_file = tmp_path / "config.yaml"
    config_file.write_text(textwrap.dedent("""
        seed_everything: 3
        trainer:
          max_epochs: 2
          limit_train_batches: 0.5
          precision: bf16-mixed
          gradient_clip_val: 1.0
          accumulate_grad_batches: 2
          val_check_interval: 0.5
        model:
          hidden: 5
          activation: tanh
        data:
          batch_size: 3
    """))
    configs = {}
    for pl in (fastlight, pytorch_lightning):
        cli = _run_cli(pl, ["--config", str(config_file), "--model.lr=0.5"], tmp_path, run=False, trainer_defaults={})
        dumped = yaml.safe_load(cli.parser.dump(cli.config, **_keep_none()))
        dumped.pop("config", None)  # the config file paths, where dumped
        configs[pl.__name__] = _without_fastlight_only(dumped)
        assert cli.trainer.max_epochs == 2 and cli.trainer.accumulate_grad_batches == 2
        assert cli.model.hparams.lr == 0.5 and cli.datamodule.batch_size == 3
        assert isinstance(cli.trainer, pl.Trainer) and isinstance(cli.model, pl.LightningModule)
    assert configs["fastlight"] == configs["pytorch_lightning"]


def test_a_config_saved_by_lightnings_cli_runs_on_fastlight(tmp_path):
    lightning_config = _print_config(pytorch_lightning, ["fit", "--trainer.max_steps=1"], tmp_path, trainer_defaults={})
    assert "model_registry" in lightning_config  # a Lightning Trainer key fastlight has no use for
    config_file = tmp_path / "lightning.yaml"
    config_file.write_text(lightning_config)
    cli = _run_cli(fastlight, ["fit", "--config", str(config_file), "--trainer.logger=false",
                               f"--trainer.default_root_dir={tmp_path}", "--trainer.enable_progress_bar=false"],
                   tmp_path, trainer_defaults={"fused": False}, save_config_callback=None)
    assert cli.trainer.global_step == 1


def test_model_registry_set_is_refused_clearly(tmp_path):
    with pytest.raises(MisconfigurationException, match="model_registry='org/model'.*no model registry"):
        _run_cli(fastlight, ["--trainer.model_registry=org/model"], tmp_path, run=False)


def test_fastlight_trainer_flags_parse(tmp_path):
    cli = _run_cli(fastlight, ["--trainer.fused=true", "--trainer.flat_grads=false", "--trainer.precision=bf16-mixed",
                               "--trainer.max_time=00:00:01:00", "--trainer.devices=1", "--trainer.accelerator=cpu"],
                   tmp_path, run=False, trainer_defaults={})
    assert cli.config.trainer.fused is True and cli.config.trainer.flat_grads is False
    assert cli.config.trainer.devices == 1
    assert isinstance(cli.trainer, fastlight.Trainer)


def test_trainer_logger_and_profiler_by_class_name_as_in_lightning(tmp_path):
    from fastlight.loggers import CSVLogger
    from fastlight.profilers import SimpleProfiler

    cli = _run_cli(fastlight, ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
                               "--trainer.logger.name=run", "--trainer.profiler=SimpleProfiler"],
                   tmp_path, run=False, trainer_defaults={})
    assert isinstance(cli.trainer.logger, CSVLogger) and cli.trainer.logger.name == "run"
    assert cli.trainer.logger.save_dir == str(tmp_path)
    assert isinstance(cli.trainer.profiler, SimpleProfiler)
    theirs = _run_cli(pytorch_lightning, ["--trainer.logger=CSVLogger", f"--trainer.logger.save_dir={tmp_path}",
                                          "--trainer.logger.name=run"], tmp_path, run=False, trainer_defaults={})
    ours_logger = cli.config.trainer.logger.as_dict()
    their_logger = theirs.config.trainer.logger.as_dict()
    assert ours_logger["class_path"] == "fastlight.loggers.CSVLogger"
    assert their_logger["class_path"] == "pytorch_lightning.loggers.CSVLogger"
    assert ours_logger["init_args"] == their_logger["init_args"]


def test_trainer_subclasses_parse_their_own_arguments(tmp_path):
    class Trainer(fastlight.Trainer):  # same name as fastlight's: both get their own parser view
        def __init__(self, *, note: str = "x", max_epochs: int = 1, **kwargs):
            super().__init__(max_epochs=max_epochs, **kwargs)
            self.note = note

    class Strict(fastlight.Trainer):
        def __init__(self, *, note: str = "y", logger=None, enable_progress_bar: bool = False):
            super().__init__(logger=logger, enable_progress_bar=enable_progress_bar)
            self.note = note

    for trainer_class, args in ((Trainer, ["--trainer.note=hello", "--trainer.max_epochs=3"]),
                                (Strict, ["--trainer.note=hello", "--trainer.logger=CSVLogger",
                                          f"--trainer.logger.save_dir={tmp_path}"])):
        cli = _run_cli(fastlight, args, tmp_path, run=False, trainer_class=trainer_class,
                       trainer_defaults={}, save_config_callback=None)
        assert type(cli.trainer) is trainer_class and cli.trainer.note == "hello"
    assert cli.trainer.logger.save_dir == str(tmp_path)


def test_strategy_by_class_name(tmp_path):
    cli = _run_cli(fastlight, ["--trainer.strategy=DDPStrategy", "--trainer.strategy.find_unused_parameters=true"],
                   tmp_path, run=False, trainer_defaults={}, save_config_callback=None)
    assert cli.config.trainer.strategy.class_path == "fastlight.strategies.DDPStrategy"
    assert type(cli.trainer.strategy).__name__ == "DDPStrategy"


# -- running: side by side --------------------------------------------------------------------------------------------
def test_fit_weights_and_metrics_equal_lightnings_with_fused_false(tmp_path):
    args = ["fit", "--seed_everything=42", "--trainer.max_epochs=2", "--trainer.limit_val_batches=2",
            "--model.hidden=6", "--model.lr=0.05", "--data.batch_size=5"]
    results = {}
    for pl in (fastlight, pytorch_lightning):
        cli = _run_cli(pl, args, tmp_path / pl.__name__)
        results[pl.__name__] = cli
        assert cli.config.fit.seed_everything == 42
    ours, theirs = results["fastlight"], results["pytorch_lightning"]
    assert ours.trainer.global_step == theirs.trainer.global_step == 14
    for (name, a), (_, b) in zip(ours.model.state_dict().items(), theirs.model.state_dict().items()):
        assert torch.equal(a, b), name
    assert set(ours.trainer.callback_metrics) == set(theirs.trainer.callback_metrics)
    for key, value in theirs.trainer.callback_metrics.items():
        assert torch.equal(ours.trainer.callback_metrics[key], value), key
    # the config each one saved is the same apart from the version header and fastlight's trainer flags
    saved = {n: yaml.safe_load((tmp_path / n / "config.yaml").read_text()) for n in results}
    for config in saved.values():
        config["trainer"]["default_root_dir"] = None
    assert _without_fastlight_only(saved["fastlight"]) == saved["pytorch_lightning"]


@pytest.mark.parametrize("subcommand, method", [("validate", "validate"), ("test", "test"), ("predict", "predict")])
def test_subcommands_call_the_trainer_method_with_the_models_and_the_parsed_arguments(tmp_path, subcommand, method):
    extra = ["--return_predictions=true"] if subcommand == "predict" else ["--verbose=false"]
    with mock.patch.object(fastlight.Trainer, method, autospec=True) as called:
        cli = _run_cli(fastlight, [subcommand, *extra], tmp_path)
    assert cli.subcommand == subcommand
    (trainer,), kwargs = called.call_args
    assert trainer is cli.trainer
    assert kwargs["model"] is cli.model and kwargs["datamodule"] is cli.datamodule
    assert kwargs["ckpt_path"] is None
    assert kwargs.get("return_predictions", kwargs.get("verbose")) is (subcommand == "predict")


def test_subcommand_results_equal_lightnings(tmp_path):
    metrics = {}
    for pl in (fastlight, pytorch_lightning):
        cli = _run_cli(pl, ["test", "--seed_everything=1"], tmp_path / pl.__name__)
        metrics[pl.__name__] = cli.trainer.callback_metrics["test_loss"]
    assert torch.equal(metrics["fastlight"], metrics["pytorch_lightning"])


def test_hooks_run_in_lightnings_order_and_a_cli_method_replaces_the_trainers(tmp_path):
    calls = {}
    for pl in (fastlight, pytorch_lightning):
        record = calls.setdefault(pl.__name__, [])

        class RecordingCLI(_cli_module(pl).LightningCLI):
            def before_instantiate_classes(self):
                record.append("before_instantiate_classes")

            def after_instantiate_classes(self):
                record.append(("after_instantiate_classes", type(self.trainer).__name__))

            def before_fit(self):
                record.append("before_fit")

            def fit(self, model, datamodule=None, **kwargs):
                record.append(("fit", sorted(kwargs)))

            def after_fit(self):
                record.append("after_fit")

        Model, Data = _classes(pl)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            RecordingCLI(Model, Data, args=["fit"], trainer_defaults=_quiet_trainer(tmp_path, pl))
    assert calls["fastlight"] == calls["pytorch_lightning"]
    assert calls["fastlight"][0] == "before_instantiate_classes" and calls["fastlight"][-1] == "after_fit"


def test_run_false_instantiates_without_running(tmp_path):
    cli = _run_cli(fastlight, ["--trainer.max_epochs=5", "--model.hidden=3"], tmp_path, run=False)
    assert cli.subcommand is None
    assert cli.trainer.max_epochs == 5 and cli.trainer.global_step == 0
    assert cli.model.net[0].out_features == 3
    assert "fit" not in cli.config


def test_args_as_dict(tmp_path):
    cli = _run_cli(fastlight, {"trainer": {"max_epochs": 4}, "model": {"lr": 0.3}}, tmp_path, run=False)
    assert cli.trainer.max_epochs == 4 and cli.model.hparams.lr == 0.3


# -- SaveConfigCallback ---------------------------------------------------------------------------------------------------
def test_config_saved_to_log_dir_and_overwrite_refused_as_in_lightning(tmp_path):
    args = ["fit", "--trainer.max_steps=1", "--model.hidden=3"]
    errors = {}
    for pl in (fastlight, pytorch_lightning):
        log_dir = tmp_path / pl.__name__
        cli = _run_cli(pl, args, log_dir)
        saved = yaml.safe_load((log_dir / "config.yaml").read_text())
        assert saved["model"]["hidden"] == 3 and saved["trainer"]["max_steps"] == 1
        assert any(isinstance(c, _cli_module(pl).SaveConfigCallback) for c in cli.trainer.callbacks)
        with pytest.raises(RuntimeError) as err:
            _run_cli(pl, args, log_dir)
        errors[pl.__name__] = str(err.value).replace(str(tmp_path / pl.__name__), "DIR")
    assert errors["fastlight"] == errors["pytorch_lightning"]
    assert "to NOT exist" in errors["fastlight"] and "overwrite" in errors["fastlight"]
    # overwrite=True replaces the file; save_config_callback=None writes nothing
    _run_cli(fastlight, ["fit", "--trainer.max_steps=1", "--model.hidden=9"], tmp_path / "fastlight",
             save_config_kwargs={"overwrite": True})
    assert yaml.safe_load((tmp_path / "fastlight" / "config.yaml").read_text())["model"]["hidden"] == 9
    _run_cli(fastlight, args, tmp_path / "none", save_config_callback=None)
    assert not (tmp_path / "none" / "config.yaml").exists()


def test_save_config_callback_config_filename_and_fast_dev_run(tmp_path):
    _run_cli(fastlight, ["fit", "--trainer.max_steps=1"], tmp_path, save_config_kwargs={"config_filename": "run.yaml"})
    assert (tmp_path / "run.yaml").is_file() and not (tmp_path / "config.yaml").exists()
    cli = _run_cli(fastlight, ["fit", "--trainer.fast_dev_run=1"], tmp_path / "fdr")
    assert not any(isinstance(c, SaveConfigCallback) for c in cli.trainer.callbacks)


def test_save_config_callback_save_to_log_dir_false_needs_a_subclass(tmp_path):
    with pytest.raises(ValueError, match="only makes sense when subclassing SaveConfigCallback"):
        SaveConfigCallback(LightningArgumentParser(), None, save_to_log_dir=False)
    saved = []

    class ToList(SaveConfigCallback):
        def save_config(self, trainer, pl_module, stage):
            saved.append((stage, self.parser.dump(self.config)))

    _run_cli(fastlight, ["fit", "--trainer.max_steps=1"], tmp_path, save_config_callback=ToList,
             save_config_kwargs={"save_to_log_dir": False})
    assert not (tmp_path / "config.yaml").exists()
    assert len(saved) == 1 and saved[0][0] == "fit" and "max_steps: 1" in saved[0][1]


# -- optimizers, schedulers, links, subclass mode --------------------------------------------------------------------------
def test_optimizer_and_lr_scheduler_from_the_command_line_as_in_lightning(tmp_path):
    args = ["--optimizer=Adam", "--optimizer.lr=0.01", "--lr_scheduler=StepLR", "--lr_scheduler.step_size=3"]
    returned = {}
    for pl in (fastlight, pytorch_lightning):
        cli = _run_cli(pl, args, tmp_path, run=False)
        optimizers, schedulers = cli.model.configure_optimizers()
        assert type(optimizers[0]) is torch.optim.Adam and optimizers[0].defaults["lr"] == 0.01
        assert type(schedulers[0]) is torch.optim.lr_scheduler.StepLR and schedulers[0].step_size == 3
        returned[pl.__name__] = cli.config.optimizer.as_dict()
    assert returned["fastlight"] == returned["pytorch_lightning"]


@pytest.mark.skipif(fastlight.ops.backend("cpu") != "native",
                    reason="the Trainer fuses optimizers only with the native kernels")
def test_optimizer_by_name_after_a_fused_fit_in_the_same_process(tmp_path):
    # a fused fit turns the user's torch optimizers into fastlight's fused twins; those must not make a class name
    # ambiguous for the next CLI in the process ("Multiple subclasses with name SGD")
    _run_cli(fastlight, ["fit", "--trainer.max_steps=2", "--optimizer=SGD", "--optimizer.lr=0.1"], tmp_path / "a")
    for name in ("SGD", "Adam", "AdamW"):
        p = torch.nn.Parameter(torch.zeros(2))
        from fastlight.engine.optim import fuse_in_place

        assert fuse_in_place(getattr(torch.optim, name)([p], lr=0.1))[0]
    cli = _run_cli(fastlight, ["--optimizer=SGD", "--optimizer.lr=0.1"], tmp_path / "b", run=False)
    assert type(cli.model.configure_optimizers()) is torch.optim.SGD


def test_reduce_on_plateau_returns_the_monitor_and_fit_uses_it(tmp_path):
    cli = _run_cli(fastlight, ["fit", "--trainer.max_epochs=2", "--optimizer=SGD", "--optimizer.lr=0.1",
                               "--lr_scheduler=fastlight.cli.ReduceLROnPlateau", "--lr_scheduler.monitor=val_loss",
                               "--lr_scheduler.patience=0"], tmp_path)
    config = cli.model.configure_optimizers()
    assert config["lr_scheduler"]["monitor"] == "val_loss"
    assert isinstance(config["lr_scheduler"]["scheduler"], fastlight.cli.ReduceLROnPlateau)
    assert cli.trainer.global_step == 16


def test_two_automatic_optimizers_are_refused(tmp_path):
    class TwoOptimizers(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_optimizer_args(torch.optim.Adam, nested_key="opt1")
            parser.add_optimizer_args(torch.optim.SGD, nested_key="opt2")

    Model, Data = _classes(fastlight)
    with pytest.raises(MisconfigurationException, match="at most one optimizer"):
        TwoOptimizers(Model, Data, run=False, args=["--opt2.lr=0.1"], trainer_defaults={"logger": False})


def test_optimizer_group_linked_into_the_model(tmp_path):
    seen = {}

    class Model(fastlight.LightningModule):
        def __init__(self, optimizer_init: dict = None):
            super().__init__()
            self.layer = nn.Linear(2, 2)
            seen["init"] = optimizer_init

        def configure_optimizers(self):
            return instantiate_class(self.parameters(), seen["init"])

    class LinkedCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_optimizer_args(torch.optim.SGD, link_to="model.optimizer_init")

    cli = LinkedCLI(Model, run=False, args=["--optimizer.lr=0.25"], trainer_defaults={"logger": False})
    assert seen["init"]["class_path"] == "torch.optim.sgd.SGD" and seen["init"]["init_args"]["lr"] == 0.25
    assert isinstance(cli.model.configure_optimizers(), torch.optim.SGD)  # linked, so not replaced by the CLI


def test_link_arguments_and_extra_arguments(tmp_path):
    class LinkedCLI(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_argument("--notes", type=str, default="none")
            parser.link_arguments("data.length", "model.hidden")

    Model, Data = _classes(fastlight)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = LinkedCLI(Model, Data, run=False, args=["--data.length=12", "--notes=x"],
                        trainer_defaults={"logger": False})
    assert cli.model.hparams.hidden == 12 and cli.config.notes == "x"


def test_subclass_mode_model_and_data_by_class_path(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cli = LightningCLI(
            args=["fit", "--model=fastlight.demos.DemoModel", "--model.out_dim=4", "--model.learning_rate=0.1",
                  "--data=fastlight.demos.BoringDataModule", "--trainer.max_steps=2", "--trainer.limit_val_batches=0",
                  "--trainer.logger=false", f"--trainer.default_root_dir={tmp_path}",
                  "--trainer.enable_progress_bar=false"],
        )
    assert type(cli.model).__name__ == "DemoModel" and cli.model.l1.out_features == 4
    assert type(cli.datamodule).__name__ == "BoringDataModule"
    assert cli.trainer.global_step == 2
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["model"] == {"class_path": "fastlight.demos.DemoModel", "init_args": {"out_dim": 4, "learning_rate": 0.1}}


def test_callbacks_from_config_and_trainer_defaults(tmp_path):
    from fastlight.callbacks import EarlyStopping, LearningRateMonitor

    persistent = LearningRateMonitor()
    cli = _run_cli(fastlight, ["--trainer.callbacks+=fastlight.callbacks.EarlyStopping",
                               "--trainer.callbacks.monitor=val_loss", "--trainer.callbacks.patience=7"],
                   tmp_path, run=False,
                   trainer_defaults={**_quiet_trainer(tmp_path, fastlight), "callbacks": [persistent]})
    stopping = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stopping) == 1 and stopping[0].patience == 7 and stopping[0].monitor == "val_loss"
    assert persistent in cli.trainer.callbacks
    assert any(isinstance(c, SaveConfigCallback) for c in cli.trainer.callbacks)


def test_trainer_defaults_callback_given_as_a_class_path_dict_is_built(tmp_path):
    from fastlight.callbacks import EarlyStopping

    config = {"class_path": "fastlight.callbacks.EarlyStopping", "init_args": {"monitor": "val_loss", "patience": 2}}
    cli = _run_cli(fastlight, [], tmp_path, run=False,
                   trainer_defaults={**_quiet_trainer(tmp_path, fastlight), "callbacks": config})
    stopping = [c for c in cli.trainer.callbacks if isinstance(c, EarlyStopping)]
    assert len(stopping) == 1 and stopping[0].patience == 2


def test_callback_group_from_add_lightning_class_args(tmp_path):
    from fastlight.callbacks import ModelCheckpoint

    class WithCheckpoint(LightningCLI):
        def add_arguments_to_parser(self, parser):
            parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
            parser.set_defaults({"checkpoint.monitor": "val_loss"})

    Model, Data = _classes(fastlight)
    cli = WithCheckpoint(Model, Data, run=False, args=["--checkpoint.save_top_k=2"],
                         trainer_defaults={"logger": False, "default_root_dir": str(tmp_path)})
    checkpoints = [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert any(c.monitor == "val_loss" and c.save_top_k == 2 for c in checkpoints)


def test_seed_everything(tmp_path):
    cli = _run_cli(fastlight, ["--seed_everything=123"], tmp_path, run=False)
    assert cli.config.seed_everything == 123 and os.environ.get("PL_GLOBAL_SEED") == "123"
    cli = _run_cli(fastlight, ["fit", "--seed_everything=true", "--trainer.max_steps=1"], tmp_path)
    assert isinstance(cli.config.fit.seed_everything, int) and not isinstance(cli.config.fit.seed_everything, bool)
    saved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert saved["seed_everything"] == cli.config.fit.seed_everything  # the seed actually used is recorded
    torch.manual_seed(5)
    expected_next = torch.rand(1)
    torch.manual_seed(5)
    _run_cli(fastlight, ["--seed_everything=false"], tmp_path, run=False, seed_everything_default=False)
    # no reseeding: the model init consumed the global RNG from where it was (not from a fresh seed)
    assert not torch.equal(torch.rand(1), expected_next)


def test_env_parsing_and_per_subcommand_parser_kwargs(tmp_path):
    defaults_file = tmp_path / "fit_defaults.yaml"
    defaults_file.write_text("trainer:\n  max_steps: 3\n")
    with mock.patch.dict(os.environ, {"PL_FIT__TRAINER__LIMIT_VAL_BATCHES": "0"}):
        cli = _run_cli(fastlight, ["fit"], tmp_path,
                       parser_kwargs={"default_env": True, "fit": {"default_config_files": [str(defaults_file)]}})
    assert cli.trainer.global_step == 3 and cli.trainer.limit_val_batches == 0


# -- errors ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args, message",
    [
        (["fit", "--trainer.max_epohcs=3"], "max_epohcs"),
        (["fit", "--trainer.max_epochs=abc"], "max_epochs"),
        (["fit", "--model.hidden=wide"], "hidden"),
        (["fit", "--config", "/nonexistent/cfg.yaml"], "cfg.yaml"),
        (["frobnicate"], "frobnicate"),
    ],
)
def test_bad_arguments_exit_with_an_error_naming_them(tmp_path, capsys, args, message):
    with pytest.raises(SystemExit) as exc:
        _run_cli(fastlight, args, tmp_path)
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_add_lightning_class_args_refuses_other_classes():
    parser = LightningArgumentParser()
    with pytest.raises(MisconfigurationException, match="Cannot add arguments from"):
        parser.add_lightning_class_args(nn.Linear, "linear")
    with pytest.raises(MisconfigurationException, match="Optimizer subclasses"):
        parser.add_optimizer_args(nn.Linear)


def test_instantiate_class():
    layer = nn.Linear(2, 2)
    optimizer = instantiate_class(layer.parameters(), {"class_path": "torch.optim.SGD", "init_args": {"lr": 0.5}})
    assert isinstance(optimizer, torch.optim.SGD) and optimizer.defaults["lr"] == 0.5
    scheduler = instantiate_class((optimizer, 2), {"class_path": "torch.optim.lr_scheduler.StepLR"})
    assert scheduler.step_size == 2


def test_args_and_sys_argv_together_warn(tmp_path):
    with mock.patch.object(sys, "argv", ["prog", "--something"]), pytest.warns(UserWarning, match="args parameter"):
        Model, Data = _classes(fastlight)
        LightningCLI(Model, Data, run=False, args=[], trainer_defaults={"logger": False})
