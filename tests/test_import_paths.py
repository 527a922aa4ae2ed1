"""Lightning's import paths exist under fastlight with the same kind of object.

Every module of the installed pytorch_lightning package (2.6) is walked; for each one fastlight mirrors, each public
name (its `__all__`, else the names the module itself defines) must exist in the fastlight module of the same path
and be the same kind of object: a class (an exception or warning class stays one, an Enum stays one), a function,
a module, or a value. What fastlight deliberately leaves out is listed below with the reason (docs/compatibility.md
says the same for users). Also: the top-level names, and the rank-zero globals set at import.
"""
import enum
import importlib
import inspect
import os
import pkgutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

import fastlight

pl = pytest.importorskip("pytorch_lightning")

ROOT = Path(__file__).resolve().parents[1]

# Lightning modules fastlight does not mirror (prefix -> reason)
NOT_MIRRORED = {
    "cli": "LightningCLI arrives with the cli work (fastlight.cli)",
    "demos": "the demo models arrive with the cli work (fastlight.demos)",
    "loggers.wandb": "logger classes arrive with the loggers work",
    "loggers.mlflow": "logger classes arrive with the loggers work",
    "loggers.comet": "logger classes arrive with the loggers work",
    "loggers.neptune": "logger classes arrive with the loggers work",
    "loggers.litlogger": "Lightning's hosted platform logger",
    "loggers.utilities": "private helpers of Lightning's loggers",
    "loops": "Lightning's loop objects; fastlight has one fit loop with views (trainer.fit_loop); loops.fetchers"
             " (private names only) is fastlight.loops.fetchers",
    "serve": "Lightning's serving validator (experimental)",
    "trainer.call": "Trainer internals",
    "trainer.configuration_validator": "Trainer internals",
    "trainer.connectors": "Trainer internals",
    "trainer.setup": "Trainer internals",
    "trainer.states": "TrainerState/TrainerFn/RunningStage arrive with the trainer-state work",
    "tuner.batch_size_scaling": "internals of Tuner.scale_batch_size (fastlight.callbacks._batch_scaling)",
    "strategies.launchers.xla": "TPUs/XLA are not supported",
    "strategies.single_xla": "TPUs/XLA are not supported",
    "plugins.io.xla_plugin": "TPUs/XLA are not supported",
    "utilities.argparse": "empty in Lightning 2.6",
    "utilities.consolidate_checkpoint": "DeepSpeed/FSDP checkpoint tool",
    "utilities.deepspeed": "DeepSpeed is not supported",
    "utilities.migration": "checkpoint migration from Lightning < 2.0",
    "utilities.upgrade_checkpoint": "checkpoint migration from Lightning < 2.0",
    "utilities.model_registry": "Lightning's hosted model registry",
    "utilities.testing": "Lightning's test-suite helpers",
    "utilities.model_summary.model_summary_deepspeed": "DeepSpeed is not supported",
}

# names fastlight does not have in modules it does mirror ((module, name) -> reason)
NAMES_NOT_MIRRORED = {
    ("loggers", "CometLogger"): "logger classes arrive with the loggers work",
    ("loggers", "MLFlowLogger"): "logger classes arrive with the loggers work",
    ("loggers", "WandbLogger"): "logger classes arrive with the loggers work",
    ("loggers", "LitLogger"): "Lightning's hosted platform logger",
    ("loggers.logger", "merge_dicts"): "logger helper, arrives with the loggers work",
    ("core.hooks", "ModelHooks"): "fastlight's LightningModule defines its hooks itself, without these mixins",
    ("core.hooks", "CheckpointHooks"): "fastlight's LightningModule defines its hooks itself, without these mixins",
    ("core.optimizer", "do_nothing_closure"): "internal",
    ("core.saving", "convert"): "internal (YAML value conversion)",
    ("core.saving", "update_hparams"): "internal",
    ("core.saving", "save_hparams_to_tags_csv"): "the tags.csv format was dropped before Lightning 2.0",
    ("plugins", "XLACheckpointIO"): "TPUs/XLA are not supported",
    ("plugins.io", "XLACheckpointIO"): "TPUs/XLA are not supported",
    ("plugins.precision.double", "LightningDoublePrecisionModule"): "internal wrapper",
    ("profilers.pytorch", "RegisterRecordFunction"): "PyTorchProfiler internals",
    ("profilers.pytorch", "ScheduleWrapper"): "PyTorchProfiler internals",
    ("strategies.deepspeed", "remove_module_hooks"): "DeepSpeed is not supported",
    ("overrides.distributed", "prepare_for_backward"): "Lightning's DDP wrapper internals",
    ("strategies.launchers", "_XLALauncher"): "TPUs/XLA are not supported",
    ("strategies.strategy", "TBroadcast"): "a TypeVar",
    ("strategies.strategy", "TReduce"): "a TypeVar",
    ("accelerators.mps", "get_device_stats"): "MPSAccelerator.get_device_stats is the method",
    ("trainer", "seed_everything"): "import it from the package root or fastlight.utilities",
}


def _skipped(short: str) -> bool:
    return any(short == p or short.startswith(p + ".") for p in NOT_MIRRORED)


def _lightning_modules():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for info in pkgutil.walk_packages(pl.__path__, "pytorch_lightning."):
            short = info.name[len("pytorch_lightning."):]
            if short.startswith("_") or "._" in short or _skipped(short):
                continue
            try:
                module = importlib.import_module(info.name)
            except Exception:  # an optional dependency of Lightning missing here: nothing to compare
                continue
            names = getattr(module, "__all__", None)
            if names is None:
                names = [n for n, v in vars(module).items() if not n.startswith("_") and not inspect.ismodule(v)
                         and getattr(v, "__module__", None) == info.name]
            out[short] = (module, sorted(names))
    return out


def _kind(obj):
    if inspect.ismodule(obj):
        return "module"
    if inspect.isclass(obj):
        if issubclass(obj, Warning):
            return "warning class"
        if issubclass(obj, BaseException):
            return "exception class"
        if issubclass(obj, enum.Enum):
            return "enum"
        return "class"
    if inspect.isfunction(obj) or inspect.isbuiltin(obj) or inspect.ismethod(obj):
        return "function"
    return "value"


LIGHTNING_MODULES = _lightning_modules()


def test_walk_found_lightning_public_modules():
    for expected in ("utilities.types", "utilities.model_summary", "strategies", "accelerators", "plugins",
                     "callbacks", "core", "utilities.rank_zero", "plugins.environments"):
        assert expected in LIGHTNING_MODULES, sorted(LIGHTNING_MODULES)


@pytest.mark.parametrize("short", sorted(LIGHTNING_MODULES))
def test_module_exists_with_lightning_names_of_the_same_kind(short):
    lightning_module, names = LIGHTNING_MODULES[short]
    ours = importlib.import_module(f"fastlight.{short}")
    problems = []
    for name in names:
        if (short, name) in NAMES_NOT_MIRRORED:
            continue
        if not hasattr(ours, name):
            problems.append(f"missing {name}")
            continue
        theirs_kind, our_kind = _kind(getattr(lightning_module, name)), _kind(getattr(ours, name))
        # callables that are not classes in Lightning may be classes here (isolate_rng: a context manager class
        # where Lightning decorates a generator); the reverse would break isinstance/subclassing
        if theirs_kind != our_kind and {theirs_kind, our_kind} != {"function", "value"} \
                and not (theirs_kind in ("function", "value") and our_kind == "class"):
            problems.append(f"{name}: Lightning has a {theirs_kind}, fastlight a {our_kind}")
    assert not problems, f"fastlight.{short}: " + "; ".join(problems)


def test_exception_and_warning_classes_keep_their_builtin_bases():
    from fastlight.utilities.exceptions import MisconfigurationException, SIGTERMException
    from fastlight.utilities.rank_zero import LightningDeprecationWarning
    from fastlight.utilities.warnings import PossibleUserWarning

    from pytorch_lightning.utilities import exceptions as pl_exceptions
    from pytorch_lightning.utilities import rank_zero as pl_rank_zero
    from pytorch_lightning.utilities import warnings as pl_warnings

    pairs = [(MisconfigurationException, pl_exceptions.MisconfigurationException),
             (SIGTERMException, pl_exceptions.SIGTERMException),
             (PossibleUserWarning, pl_warnings.PossibleUserWarning),
             (LightningDeprecationWarning, pl_rank_zero.LightningDeprecationWarning)]
    for ours, theirs in pairs:
        assert [b.__name__ for b in ours.__mro__] == [b.__name__ for b in theirs.__mro__], (ours, theirs)


def test_top_level_names():
    for name in pl.__all__ + ["cli_lightning_logo", "LIGHTNING_LOGO", "__version__",
                              "disable_possible_user_warnings"]:
        assert hasattr(fastlight, name), name
    for name in pl.__all__:
        assert _kind(getattr(fastlight, name)) == _kind(getattr(pl, name)), name
    for sub in ("accelerators", "plugins", "strategies", "loggers", "profilers", "tuner", "utilities", "callbacks",
                "core", "trainer"):
        assert inspect.ismodule(getattr(fastlight, sub)), sub


def test_cli_lightning_logo_prints_a_banner(capsys):
    fastlight.cli_lightning_logo()
    out = capsys.readouterr().out
    assert fastlight.LIGHTNING_LOGO.strip().splitlines()[0] in out


def test_utilities_types_are_usable_annotations():
    from typing import get_args

    from fastlight.utilities.types import EVAL_DATALOADERS, STEP_OUTPUT, TRAIN_DATALOADERS, LRSchedulerConfig, \
        OptimizerLRScheduler

    import torch

    assert torch.Tensor in get_args(STEP_OUTPUT) and type(None) in get_args(STEP_OUTPUT)
    assert torch.optim.Optimizer in get_args(OptimizerLRScheduler)
    assert TRAIN_DATALOADERS is EVAL_DATALOADERS
    config = LRSchedulerConfig(scheduler=None)
    assert (config.interval, config.frequency, config.strict) == ("epoch", 1, True)


# ------------------------------------------------------------------------------------------------ rank-zero globals
def _rank_holders():
    from lightning_utilities.core import rank_zero as lu_rank_zero

    from fastlight.utilities import rank_zero

    return rank_zero.rank_zero_only, lu_rank_zero.rank_zero_only


def test_set_rank_sets_fastlight_and_lightning_utilities_rank():
    pytest.importorskip("lightning_utilities")
    from fastlight.utilities.rank_zero import _set_rank

    ours, theirs = _rank_holders()
    _set_rank(3)  # the autouse fixture in conftest.py puts both back to 0
    assert ours.rank == 3 and theirs.rank == 3


@pytest.mark.parametrize("env", [{"RANK": "2"}, {"LOCAL_RANK": "1"}, {"SLURM_PROCID": "5"}, {}])
def test_rank_is_set_at_import_from_the_launcher_environment(env):
    """In a fresh interpreter (as each launched process is): importing fastlight sets its own and
    lightning_utilities' rank_zero_only.rank from the environment, so a project's `@rank_zero_only` works at once."""
    pytest.importorskip("lightning_utilities")
    clean = {k: v for k, v in os.environ.items()
             if k not in ("RANK", "LOCAL_RANK", "SLURM_PROCID", "JSM_NAMESPACE_RANK")}
    clean["PYTHONPATH"] = os.pathsep.join([str(ROOT), clean.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    code = ("import fastlight\n"
            "from lightning_utilities.core.rank_zero import rank_zero_only as lu\n"
            "from fastlight.utilities.rank_zero import rank_zero_only as ours\n"
            "print(ours.rank, lu.rank)\n")
    out = subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                         timeout=120, check=True).stdout.split()
    expected = next(iter(env.values()), "0")
    assert out == [expected, expected], out
