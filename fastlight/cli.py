"""LightningCLI: a command line and config-file front end for a Trainer, a LightningModule and a LightningDataModule.

Lightning's `lightning.pytorch.cli` on fastlight's classes. jsonargparse does the parsing (class signatures become
arguments, `--config` files, `--print_config`, subcommands, argument links); it is an optional dependency:

    pip install 'fastlight[cli]'        # or: pip install 'jsonargparse[signatures]>=4.39'

`import fastlight` never imports jsonargparse; `import fastlight.cli` works without it, and the first parser or CLI
created says what to install.

    python train.py fit --config config.yaml --trainer.max_epochs=3 --model.lr=0.01
    python train.py fit --print_config > config.yaml
"""
import inspect
import os
import sys
from functools import partial, update_wrapper
from types import MethodType
from typing import Any, Callable, Dict, Iterable, List, Optional, Set, Tuple, Type, TypeVar, Union

import torch
import yaml
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from fastlight.callbacks.callback import Callback
from fastlight.core.datamodule import LightningDataModule
from fastlight.core.module import LightningModule
from fastlight.trainer import Trainer
from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities._fs import filesystem
from fastlight.utilities.rank_zero import rank_zero_warn
from fastlight.utilities.seed import seed_everything

_JSONARGPARSE_MIN_VERSION = "4.39"
_INSTALL_HINT = "pip install 'fastlight[cli]'  (or: pip install 'jsonargparse[signatures]>=4.39')"


def _jsonargparse_problem() -> Optional[str]:
    """None when jsonargparse with its `signatures` extra is usable, else what is missing."""
    import importlib.util

    if importlib.util.find_spec("jsonargparse") is None:
        return "jsonargparse is not installed"
    from importlib.metadata import PackageNotFoundError, version

    from packaging.version import Version

    try:
        found = version("jsonargparse")
    except PackageNotFoundError:  # importable but without metadata (e.g. a source checkout on the path): trust it
        found = None
    if found is not None and Version(found) < Version(_JSONARGPARSE_MIN_VERSION):
        return f"jsonargparse {found} is installed, fastlight.cli needs >={_JSONARGPARSE_MIN_VERSION}"
    if importlib.util.find_spec("docstring_parser") is None:
        return "jsonargparse's `signatures` extra (docstring-parser) is not installed"
    return None


_JSONARGPARSE_PROBLEM = _jsonargparse_problem()
_JSONARGPARSE_SIGNATURES_AVAILABLE = _JSONARGPARSE_PROBLEM is None


def _require_jsonargparse() -> None:
    if _JSONARGPARSE_PROBLEM is not None:
        raise ModuleNotFoundError(f"fastlight.cli needs jsonargparse: {_JSONARGPARSE_PROBLEM}. Install it with: {_INSTALL_HINT}")


if _JSONARGPARSE_SIGNATURES_AVAILABLE:
    import docstring_parser
    from jsonargparse import ActionConfigFile, ArgumentParser, Namespace, class_from_function
    from jsonargparse import register_unresolvable_import_paths

    # some torch objects report a __module__ that cannot be imported back; let jsonargparse map them to torch's paths
    register_unresolvable_import_paths(torch)
    try:  # remote config files (s3://...) through fsspec, when it is installed
        import fsspec  # noqa: F401
        from jsonargparse import set_parsing_settings

        set_parsing_settings(config_read_mode_fsspec_enabled=True)
    except ImportError:
        pass
else:  # the module still imports; creating a parser or a CLI raises with the install command
    ArgumentParser = object  # type: ignore[misc,assignment]
    Namespace = object  # type: ignore[misc,assignment]

ModuleType = TypeVar("ModuleType")


class ReduceLROnPlateau(torch.optim.lr_scheduler.ReduceLROnPlateau):
    """torch's ReduceLROnPlateau with the metric to watch (`monitor`) as an init argument, so a config file can
    name both; LightningCLI's automatic `configure_optimizers` returns it with that monitor."""

    def __init__(self, optimizer: Optimizer, monitor: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(optimizer, *args, **kwargs)
        self.monitor = monitor


# The schedulers the CLI accepts: torch's LRScheduler subclasses and the ReduceLROnPlateau above (which carries a monitor)
LRSchedulerTypeTuple = (LRScheduler, ReduceLROnPlateau)
LRSchedulerTypeUnion = Union[LRScheduler, ReduceLROnPlateau]
LRSchedulerType = Union[Type[LRScheduler], Type[ReduceLROnPlateau]]

# Type aliases for CLI authors (dependency injection of optimizers and schedulers into a module's __init__)
ArgsType = Optional[Union[List[str], Dict[str, Any], "Namespace"]]
OptimizerCallable = Callable[[Iterable], Optimizer]
LRSchedulerCallable = Callable[[Optimizer], Union[LRScheduler, ReduceLROnPlateau]]

_LIGHTNING_CLASSES = (Trainer, LightningModule, LightningDataModule, Callback)
# `--help` lines for the subcommands whose Trainer method has no docstring to take them from
_SUBCOMMAND_HELP = {
    "fit": "Train the model (Trainer.fit), validating as configured.",
    "validate": "Run one pass over the validation data (Trainer.validate).",
    "test": "Run one pass over the test data (Trainer.test).",
    "predict": "Run prediction over the predict data (Trainer.predict).",
}


def _is_overridden(method_name: str, instance: Any, parent: type) -> bool:
    """Whether `type(instance)` (or the instance itself) defines `method_name` differently from `parent`."""
    attr = getattr(instance, method_name, None)
    if attr is None:
        return False
    code = getattr(attr, "__wrapped__", attr)
    code = getattr(code, "__func__", code)
    return code is not getattr(parent, method_name, None)


class LightningArgumentParser(ArgumentParser):
    """jsonargparse's ArgumentParser with helpers for Lightning classes, optimizers and LR schedulers."""

    def __init__(
        self,
        *args: Any,
        description: str = "Lightning Trainer command line tool",
        env_prefix: str = "PL",
        default_env: bool = False,
        **kwargs: Any,
    ) -> None:
        """Same arguments as jsonargparse.ArgumentParser. Environment variables (`PL_TRAINER__MAX_EPOCHS`, and a whole
        config in `PL_CONFIG`) are read only with `default_env=True`."""
        _require_jsonargparse()
        super().__init__(*args, description=description, env_prefix=env_prefix, default_env=default_env, **kwargs)
        self.callback_keys: List[str] = []
        # optimizer and scheduler groups, by nested key: (class or tuple of base classes, link target or "AUTOMATIC")
        self._optimizers: Dict[str, Tuple[Union[type, Tuple[type, ...]], str]] = {}
        self._lr_schedulers: Dict[str, Tuple[Union[type, Tuple[type, ...]], str]] = {}

    def add_lightning_class_args(
        self,
        lightning_class: Union[Callable[..., Any], type],
        nested_key: str,
        subclass_mode: bool = False,
        required: bool = True,
    ) -> List[str]:
        """Add the init arguments of a Trainer / LightningModule / LightningDataModule / Callback class (or of a
        function returning one) under `nested_key`; with `subclass_mode`, any subclass chosen by `class_path`.
        Returns the names of the arguments added."""
        if callable(lightning_class) and not isinstance(lightning_class, type):
            lightning_class = class_from_function(lightning_class)
        elif isinstance(lightning_class, type) and issubclass(lightning_class, Trainer) and not subclass_mode:
            lightning_class = _typed_trainer_view(lightning_class)
        if not (isinstance(lightning_class, type) and issubclass(lightning_class, _LIGHTNING_CLASSES)):
            raise MisconfigurationException(
                f"Cannot add arguments from: {lightning_class}. You should provide either a callable or a subclass of: "
                "Trainer, LightningModule, LightningDataModule, or Callback."
            )
        if issubclass(lightning_class, Callback):
            self.callback_keys.append(nested_key)
        if subclass_mode:
            return self.add_subclass_arguments(lightning_class, nested_key, fail_untyped=False, required=required)
        return self.add_class_arguments(
            lightning_class,
            nested_key,
            fail_untyped=False,
            instantiate=not issubclass(lightning_class, Trainer),  # the CLI builds the Trainer itself
            sub_configs=True,
        )

    def add_optimizer_args(
        self,
        optimizer_class: Union[Type[Optimizer], Tuple[Type[Optimizer], ...]] = (Optimizer,),
        nested_key: str = "optimizer",
        link_to: str = "AUTOMATIC",
    ) -> None:
        """Add an optimizer's init arguments (all but `params`) under `nested_key`. A tuple of classes accepts any
        subclass by `class_path`. `link_to` names a parser key that receives the optimizer's config; "AUTOMATIC"
        lets the CLI build the optimizer and the module's `configure_optimizers`."""
        classes = optimizer_class if isinstance(optimizer_class, tuple) else (optimizer_class,)
        bad = [c for c in classes if not (isinstance(c, type) and issubclass(c, Optimizer))]
        if bad:
            raise MisconfigurationException(f"add_optimizer_args expects torch.optim.Optimizer subclasses, got {bad}")
        kwargs: Dict[str, Any] = {"instantiate": False, "fail_untyped": False, "skip": {"params"}}
        if isinstance(optimizer_class, tuple):
            self.add_subclass_arguments(optimizer_class, nested_key, **kwargs)
        else:
            self.add_class_arguments(optimizer_class, nested_key, sub_configs=True, **kwargs)
        self._optimizers[nested_key] = (optimizer_class, link_to)

    def add_lr_scheduler_args(
        self,
        lr_scheduler_class: Union[LRSchedulerType, Tuple[LRSchedulerType, ...]] = LRSchedulerTypeTuple,
        nested_key: str = "lr_scheduler",
        link_to: str = "AUTOMATIC",
    ) -> None:
        """Add an LR scheduler's init arguments (all but `optimizer`) under `nested_key`; as add_optimizer_args."""
        classes = lr_scheduler_class if isinstance(lr_scheduler_class, tuple) else (lr_scheduler_class,)
        bad = [c for c in classes if not (isinstance(c, type) and issubclass(c, LRSchedulerTypeTuple))]
        if bad:
            raise MisconfigurationException(
                f"add_lr_scheduler_args expects torch.optim.lr_scheduler.LRScheduler subclasses or "
                f"fastlight.cli.ReduceLROnPlateau, got {bad}"
            )
        kwargs: Dict[str, Any] = {"instantiate": False, "fail_untyped": False, "skip": {"optimizer"}}
        if isinstance(lr_scheduler_class, tuple):
            self.add_subclass_arguments(lr_scheduler_class, nested_key, **kwargs)
        else:
            self.add_class_arguments(lr_scheduler_class, nested_key, sub_configs=True, **kwargs)
        self._lr_schedulers[nested_key] = (lr_scheduler_class, link_to)


_TRAINER_VIEWS: Dict[type, type] = {}  # one view per Trainer class (jsonargparse names each view in this module)


def _typed_trainer_view(trainer_class: type) -> type:
    """What the parser introspects for a Trainer class: its init signature, with Lightning's precise types where
    fastlight's signature says `Any` (so `--trainer.logger=CSVLogger --trainer.logger.save_dir=...`,
    `--trainer.profiler=SimpleProfiler` and `--trainer.strategy=DDPStrategy --trainer.strategy.<arg>=...` resolve
    classes as under Lightning), and Lightning's `model_registry` key
    when the class lacks it (accepted as null so Lightning's configs parse; the CLI drops it before building the
    Trainer). A Trainer whose __init__ takes *args/**kwargs is introspected as it is."""
    if trainer_class in _TRAINER_VIEWS:
        return _TRAINER_VIEWS[trainer_class]
    from fastlight.loggers.logger import Logger
    from fastlight.profilers import Profiler
    from fastlight.strategies import Strategy

    signature = inspect.signature(trainer_class.__init__)
    params = list(signature.parameters.values())[1:]  # without self
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return trainer_class
    precise = {
        "logger": Optional[Union[Logger, Iterable[Logger], bool]],
        "profiler": Optional[Union[Profiler, str]],
        "strategy": Union[str, Strategy],
    }
    vague = (Any, inspect.Parameter.empty)
    params = [p.replace(annotation=precise[p.name]) if p.name in precise and p.annotation in vague else p for p in params]
    if "model_registry" not in signature.parameters:
        registry = inspect.Parameter("model_registry", inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Optional[str])
        names = [p.name for p in params]
        at = names.index("enable_autolog_hparams") + 1 if "enable_autolog_hparams" in names else len(params)
        params.insert(at, registry)

    def build(**kwargs: Any) -> Any:
        return trainer_class(**kwargs)

    build.__signature__ = inspect.Signature(params, return_annotation=trainer_class)  # type: ignore[attr-defined]
    build.__annotations__ = {**{p.name: p.annotation for p in params if p.annotation is not p.empty}, "return": trainer_class}
    build.__doc__ = trainer_class.__init__.__doc__ or trainer_class.__doc__
    build.__name__ = build.__qualname__ = trainer_class.__name__
    build.__module__ = trainer_class.__module__
    # jsonargparse registers the view under a name in this module: one per class, also for equally named classes
    name = f"_{trainer_class.__name__}_view_{len(_TRAINER_VIEWS)}"
    try:
        view = class_from_function(build, name=name)
    except TypeError:  # older jsonargparse without `name`
        view = class_from_function(build)
    _TRAINER_VIEWS[trainer_class] = view if issubclass(view, Trainer) else trainer_class
    return _TRAINER_VIEWS[trainer_class]


def _keep_none() -> Dict[str, bool]:
    """The keyword that makes jsonargparse's dump/save keep None values (renamed skip_none -> skip_unset in 4.49)."""
    import jsonargparse
    from packaging.version import Version

    renamed = Version(getattr(jsonargparse, "__version__", "0")) >= Version("4.49")
    return {"skip_unset": False} if renamed else {"skip_none": False}


class SaveConfigCallback(Callback):
    """Writes the CLI's parsed config to `<trainer.log_dir>/<config_filename>` when the run starts (`setup`), once.

    Args:
        parser: the parser that parsed the config (it knows how to dump it).
        config: the parsed config.
        config_filename: the file name in the log directory.
        overwrite: replace an existing file; otherwise an existing file raises RuntimeError (protecting a previous
            run's config).
        multifile: keep the structure of several input config files.
        save_to_log_dir: write to the log directory; False only makes sense in a subclass implementing `save_config`.
    """

    def __init__(
        self,
        parser: LightningArgumentParser,
        config: "Namespace",
        config_filename: str = "config.yaml",
        overwrite: bool = False,
        multifile: bool = False,
        save_to_log_dir: bool = True,
    ) -> None:
        self.parser = parser
        self.config = config
        self.config_filename = config_filename
        self.overwrite = overwrite
        self.multifile = multifile
        self.save_to_log_dir = save_to_log_dir
        self.already_saved = False
        if not save_to_log_dir and not _is_overridden("save_config", self, SaveConfigCallback):
            raise ValueError(
                "`save_to_log_dir=False` only makes sense when subclassing SaveConfigCallback to implement "
                "`save_config` and it is desired to disable the standard behavior of saving to log_dir."
            )

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if self.already_saved:
            return
        if self.save_to_log_dir:
            log_dir = trainer.log_dir
            if log_dir is None:
                raise RuntimeError("SaveConfigCallback: the trainer has no log_dir to save the config to")
            config_path = os.path.join(log_dir, self.config_filename)
            fs = filesystem(log_dir)
            if not self.overwrite:
                exists = fs.isfile(config_path) if trainer.is_global_zero else False
                if trainer.strategy.broadcast(exists):  # every rank fails together, not only rank 0
                    raise RuntimeError(
                        f"{type(self).__name__} expected {config_path} to NOT exist. Aborting to avoid overwriting"
                        " results of a previous run. You can delete the previous config file,"
                        " set `LightningCLI(save_config_callback=None)` to disable config saving,"
                        ' or set `LightningCLI(save_config_kwargs={"overwrite": True})` to overwrite the config file.'
                    )
            if trainer.is_global_zero:  # one writer; the logger may not have created the directory yet
                fs.makedirs(log_dir, exist_ok=True)
                self.parser.save(
                    self.config, config_path, overwrite=self.overwrite, multifile=self.multifile,
                    **_keep_none(),
                )
        if trainer.is_global_zero:
            self.save_config(trainer, pl_module, stage)
            self.already_saved = True
        self.already_saved = trainer.strategy.broadcast(self.already_saved)

    def save_config(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        """Override to save the config somewhere else as well (a logger, an artifact store). Runs on rank 0 only, so
        it must not make collective calls (override `setup` for those)."""


class LightningCLI:
    """Builds a parser from the Trainer's, the model's and the datamodule's init arguments, parses the command line
    (or `args`), instantiates the classes and, with `run=True`, runs the chosen subcommand (fit, validate, test,
    predict) as the Trainer method of that name."""

    def __init__(
        self,
        model_class: Optional[Union[Type[LightningModule], Callable[..., LightningModule]]] = None,
        datamodule_class: Optional[Union[Type[LightningDataModule], Callable[..., LightningDataModule]]] = None,
        save_config_callback: Optional[Type[SaveConfigCallback]] = SaveConfigCallback,
        save_config_kwargs: Optional[Dict[str, Any]] = None,
        trainer_class: Union[Type[Trainer], Callable[..., Trainer]] = Trainer,
        trainer_defaults: Optional[Dict[str, Any]] = None,
        seed_everything_default: Union[bool, int] = True,
        parser_kwargs: Optional[Union[Dict[str, Any], Dict[str, Dict[str, Any]]]] = None,
        parser_class: Type[LightningArgumentParser] = LightningArgumentParser,
        subclass_mode_model: bool = False,
        subclass_mode_data: bool = False,
        args: ArgsType = None,
        run: bool = True,
        auto_configure_optimizers: bool = True,
        load_from_checkpoint_support: bool = True,
    ) -> None:
        """
        Args:
            model_class: a LightningModule class or a function returning one. None: any LightningModule subclass,
                chosen in the config by `class_path` (`--model=MyModel`).
            datamodule_class: likewise for the LightningDataModule; None makes `data` optional.
            save_config_callback: the callback class that saves the config to the log dir (None: don't save).
            save_config_kwargs: its extra init arguments (`overwrite`, `config_filename`, `multifile`).
            trainer_class: the Trainer class (or a function returning a Trainer).
            trainer_defaults: Trainer argument defaults; its `callbacks` are always added and are not configurable.
            seed_everything_default: the `--seed_everything` default: an int seed, True (a random seed, recorded
                in the config) or False (no seeding).
            parser_kwargs: init arguments of the parsers; a key named after a subcommand holds that subparser's.
            parser_class: the parser class.
            subclass_mode_model: accept any subclass of `model_class` by `class_path`.
            subclass_mode_data: accept any subclass of `datamodule_class` by `class_path`.
            args: what to parse instead of sys.argv[1:]: a list of command line arguments, a dict or a Namespace.
            run: add and run the subcommands; False only parses and instantiates (no subcommand).
            auto_configure_optimizers: add `--optimizer` / `--lr_scheduler` and, when given, build them and
                replace the module's `configure_optimizers`.
            load_from_checkpoint_support: record the parsed model/datamodule config as their hyperparameters
                (when the core supports it) so `load_from_checkpoint` can rebuild nested classes.
        """
        _require_jsonargparse()
        self.save_config_callback = save_config_callback
        self.save_config_kwargs = save_config_kwargs or {}
        self.trainer_class = trainer_class
        self.trainer_defaults = trainer_defaults or {}
        self.seed_everything_default = seed_everything_default
        self.parser_kwargs = parser_kwargs or {}
        self.parser_class = parser_class
        self.auto_configure_optimizers = auto_configure_optimizers

        self.model_class = model_class
        self._model_class = model_class or LightningModule  # what the parser sees
        self.subclass_mode_model = model_class is None or subclass_mode_model
        self.datamodule_class = datamodule_class
        self._datamodule_class = datamodule_class or LightningDataModule
        self.subclass_mode_data = datamodule_class is None or subclass_mode_data

        main_kwargs, subparser_kwargs = self._setup_parser_kwargs(self.parser_kwargs)
        self.setup_parser(run, main_kwargs, subparser_kwargs)
        self.parse_arguments(self.parser, args)
        self._parse_ckpt_path()

        self.subcommand = self.config["subcommand"] if run else None
        self._set_seed()

        if load_from_checkpoint_support:
            self._add_instantiators()
        self.before_instantiate_classes()
        self.instantiate_classes()
        self.after_instantiate_classes()

        if self.subcommand is not None:
            self._run_subcommand(self.subcommand)

    # -- the parser -----------------------------------------------------------------------------------------------
    def _setup_parser_kwargs(self, parser_kwargs: Dict[str, Any]) -> Tuple[Dict[str, Any], Dict[str, Any]]:
        names = set(self.subcommands())
        main = {k: v for k, v in parser_kwargs.items() if k not in names}
        per_subcommand = {k: v for k, v in parser_kwargs.items() if k in names}
        return main, per_subcommand

    def init_parser(self, **kwargs: Any) -> LightningArgumentParser:
        """Create a parser with a `-c/--config` argument (which also brings `--print_config`)."""
        version = sys.modules["fastlight"].__version__  # the package root is imported before any of its submodules
        kwargs.setdefault("dump_header", [f"fastlight=={version}"])
        parser = self.parser_class(**kwargs)
        parser.add_argument(
            "-c", "--config", action=ActionConfigFile, help="Path to a configuration file in json or yaml format."
        )
        return parser

    def setup_parser(self, add_subcommands: bool, main_kwargs: Dict[str, Any], subparser_kwargs: Dict[str, Any]) -> None:
        """Create `self.parser` and, with subcommands, one subparser per subcommand."""
        self.parser = self.init_parser(**main_kwargs)
        if add_subcommands:
            self._subcommand_method_arguments: Dict[str, List[str]] = {}
            self._add_subcommands(self.parser, **subparser_kwargs)
        else:
            self._add_arguments(self.parser)

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """`--seed_everything`."""
        parser.add_argument(
            "--seed_everything",
            type=Union[bool, int],
            default=self.seed_everything_default,
            help="Seed for seed_everything before the classes are instantiated: an int, or true for a random seed "
            "(recorded in the saved config), or false to not seed.",
        )

    def add_core_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """`--trainer.*`, `--model.*` and `--data.*`."""
        parser.add_lightning_class_args(self.trainer_class, "trainer")
        if "--trainer.model_registry" not in parser._option_string_actions:  # a Lightning Trainer key fastlight lacks
            parser.add_argument(
                "--trainer.model_registry",
                type=Optional[str],
                default=None,
                help="Lightning's model registry upload; fastlight has none. Accepted (as null) so that configs "
                "written by Lightning's CLI parse.",
            )
        parser.set_defaults({f"trainer.{k}": v for k, v in self.trainer_defaults.items() if k != "callbacks"})
        parser.add_lightning_class_args(self._model_class, "model", subclass_mode=self.subclass_mode_model)
        parser.add_lightning_class_args(
            self._datamodule_class,
            "data",
            subclass_mode=self.subclass_mode_data,
            required=self.datamodule_class is not None,  # without one the module's own dataloaders are used
        )

    def _add_arguments(self, parser: LightningArgumentParser) -> None:
        self.add_default_arguments_to_parser(parser)
        self.add_core_arguments_to_parser(parser)
        self.add_arguments_to_parser(parser)
        if self.auto_configure_optimizers:  # unless add_arguments_to_parser already added its own groups
            if not parser._optimizers:
                parser.add_optimizer_args((Optimizer,))
            if not parser._lr_schedulers:
                parser.add_lr_scheduler_args(LRSchedulerTypeTuple)
        self.link_optimizers_and_lr_schedulers(parser)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        """Override to add arguments (`parser.add_argument`, `add_lightning_class_args`, `add_optimizer_args`) or
        links (`parser.link_arguments`)."""

    @staticmethod
    def subcommands() -> Dict[str, Set[str]]:
        """The subcommands (Trainer methods) and the method arguments the parser leaves out (the CLI passes them)."""
        return {
            "fit": {"model", "train_dataloaders", "val_dataloaders", "datamodule"},
            "validate": {"model", "dataloaders", "datamodule"},
            "test": {"model", "dataloaders", "datamodule"},
            "predict": {"model", "dataloaders", "datamodule"},
        }

    def _add_subcommands(self, parser: LightningArgumentParser, **kwargs: Any) -> None:
        self._subcommand_parsers: Dict[str, LightningArgumentParser] = {}
        subcommands = parser.add_subcommands()
        trainer_class = self.trainer_class if isinstance(self.trainer_class, type) else class_from_function(self.trainer_class)
        for name in self.subcommands():
            description = _short_description(getattr(trainer_class, name)) or _SUBCOMMAND_HELP.get(name)
            sub_kwargs = dict(kwargs.get(name, {}))
            sub_kwargs.setdefault("description", description)
            subparser = self._prepare_subcommand_parser(trainer_class, name, **sub_kwargs)
            self._subcommand_parsers[name] = subparser
            subcommands.add_subcommand(name, subparser, help=description)

    def _prepare_subcommand_parser(self, klass: type, subcommand: str, **kwargs: Any) -> LightningArgumentParser:
        parser = self.init_parser(**kwargs)
        self._add_arguments(parser)
        skip: Set[Union[str, int]] = set(self.subcommands()[subcommand])
        # the method's own arguments (ckpt_path, verbose, ...), remembered to pass them on when the subcommand runs
        self._subcommand_method_arguments[subcommand] = parser.add_method_arguments(klass, subcommand, skip=skip)
        return parser

    @staticmethod
    def link_optimizers_and_lr_schedulers(parser: LightningArgumentParser) -> None:
        """Link each optimizer / scheduler group that names a `link_to` target to that key."""
        for key, (class_type, link_to) in {**parser._optimizers, **parser._lr_schedulers}.items():
            if link_to == "AUTOMATIC":
                continue
            if isinstance(class_type, tuple):
                parser.link_arguments(key, link_to)
            else:
                parser.link_arguments(key, link_to, compute_fn=partial(_with_class_path, class_type))

    def parse_arguments(self, parser: LightningArgumentParser, args: ArgsType) -> None:
        """Parse `args` (or sys.argv) into `self.config`."""
        if args is not None and len(sys.argv) > 1:
            rank_zero_warn(
                "LightningCLI's args parameter is intended to run from within Python like if it were from the command "
                "line. To prevent mistakes it is not recommended to provide both args and command line arguments, got: "
                f"sys.argv[1:]={sys.argv[1:]}, args={args}."
            )
        if isinstance(args, (dict, Namespace)):
            self.config = parser.parse_object(args)
        else:
            self.config = parser.parse_args(args)

    def _parse_ckpt_path(self) -> None:
        """With `--ckpt_path FILE`, the model hyperparameters saved in that checkpoint are parsed on top of the
        config, so the model is rebuilt as it was saved."""
        if not self.config.get("subcommand"):
            return
        ckpt_path = self.config[self.config.subcommand].get("ckpt_path")
        if not ckpt_path or not os.path.isfile(ckpt_path):
            return
        checkpoint = torch.load(ckpt_path, weights_only=True, map_location="cpu")
        hparams = dict(checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        if "_class_path" in hparams:
            hparams = {"class_path": hparams.pop("_class_path"), "dict_kwargs": hparams}
        try:
            self.config = self.parser.parse_object({self.config.subcommand: {"model": hparams}}, self.config)
        except SystemExit:
            sys.stderr.write("Parsing of ckpt_path hyperparameters failed!\n")  # Lightning's text
            raise

    def _dump_config(self) -> None:
        if hasattr(self, "config_dump"):
            return
        dumped = self.parser.dump(self.config, skip_link_targets=False, format="yaml", **_keep_none())
        self.config_dump = yaml.safe_load(dumped)
        if "subcommand" in self.config:
            self.config_dump = self.config_dump[self.config.subcommand]

    def _add_instantiators(self) -> None:
        for key, cls, subclasses in (
            ("model", self._model_class, self.subclass_mode_model),
            ("data", self._datamodule_class, self.subclass_mode_data),
        ):
            self.parser.add_instantiator(_ModuleInstantiator(self, key), _returned_type(cls), subclasses=subclasses)

    # -- instantiation ----------------------------------------------------------------------------------------------
    def before_instantiate_classes(self) -> None:
        """Override to run code after parsing, before the classes are instantiated."""

    def instantiate_classes(self) -> None:
        """Instantiate the model, datamodule, callbacks and trainer: `self.model`, `self.datamodule`, `self.trainer`."""
        instantiate = getattr(self.parser, "instantiate", None) or self.parser.instantiate_classes
        self.config_init = instantiate(self.config)
        self.datamodule = self._get(self.config_init, "data")
        self.model = self._get(self.config_init, "model")
        self._add_configure_optimizers_method_to_model(self.subcommand)
        self.trainer = self.instantiate_trainer()

    def after_instantiate_classes(self) -> None:
        """Override to run code after the classes are instantiated."""

    def instantiate_trainer(self, **kwargs: Any) -> Trainer:
        """Build the trainer from the parsed `trainer` group (updated with `kwargs`), adding the callbacks from
        callback groups, `trainer_defaults["callbacks"]` and the SaveConfigCallback."""
        extra_callbacks = [self._get(self.config_init, key) for key in self._parser(self.subcommand).callback_keys]
        trainer_config = {**self._get(self.config_init, "trainer", default={}), **kwargs}
        if "model_registry" not in inspect.signature(self.trainer_class).parameters:
            registry = trainer_config.pop("model_registry", None)
            if registry is not None:
                raise MisconfigurationException(
                    f"trainer.model_registry={registry!r}: fastlight has no model registry upload; leave it null"
                )
        return self._instantiate_trainer(trainer_config, extra_callbacks)

    def _instantiate_trainer(self, config: Dict[str, Any], callbacks: List[Callback]) -> Trainer:
        if "callbacks" not in config:
            rank_zero_warn(
                f"The `{self.trainer_class.__qualname__}` class does not expose the `callbacks` argument so they will"
                " not be included."
            )
            return self.trainer_class(**config)
        given = config["callbacks"]
        all_callbacks = [] if given is None else list(given) if isinstance(given, (list, tuple)) else [given]
        all_callbacks.extend(callbacks)
        if "callbacks" in self.trainer_defaults:
            defaults = self.trainer_defaults["callbacks"]
            for callback in defaults if isinstance(defaults, list) else [defaults]:
                # a {"class_path": ..., "init_args": ...} default is built (Lightning passes the dict on as it is)
                is_config = isinstance(callback, dict) and "class_path" in callback
                all_callbacks.append(instantiate_class((), callback) if is_config else callback)
        if self.save_config_callback and not config.get("fast_dev_run", False):
            all_callbacks.append(
                self.save_config_callback(
                    self._parser(self.subcommand),
                    self.config.get(str(self.subcommand), self.config),
                    **self.save_config_kwargs,
                )
            )
        config["callbacks"] = all_callbacks
        return self.trainer_class(**config)

    def _parser(self, subcommand: Optional[str]) -> LightningArgumentParser:
        return self.parser if subcommand is None else self._subcommand_parsers[subcommand]

    @staticmethod
    def configure_optimizers(
        lightning_module: LightningModule, optimizer: Optimizer, lr_scheduler: Optional[LRSchedulerTypeUnion] = None
    ) -> Any:
        """What the module's `configure_optimizers` returns when the CLI builds the optimizer (override to change)."""
        if lr_scheduler is None:
            return optimizer
        if isinstance(lr_scheduler, ReduceLROnPlateau):
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": lr_scheduler, "monitor": lr_scheduler.monitor}}
        return [optimizer], [lr_scheduler]

    def _add_configure_optimizers_method_to_model(self, subcommand: Optional[str]) -> None:
        """With one "AUTOMATIC" optimizer group given in the config (and at most one scheduler group), build them and
        make `self.model.configure_optimizers` return them (through `self.configure_optimizers`)."""
        if not self.auto_configure_optimizers:
            return
        parser = self._parser(subcommand)

        def automatic(base: Union[type, Tuple[type, ...]], groups: Dict[str, Tuple[Any, str]]) -> List[str]:
            bases = base if isinstance(base, tuple) else (base,)
            found = []
            for key, (class_type, link_to) in groups.items():
                classes = class_type if isinstance(class_type, tuple) else (class_type,)
                if link_to == "AUTOMATIC" and any(issubclass(c, bases) for c in classes):
                    found.append(key)
            return found

        optimizers = automatic(Optimizer, parser._optimizers)
        schedulers = automatic(LRSchedulerTypeTuple, parser._lr_schedulers)
        if not optimizers:
            return
        if len(optimizers) > 1 or len(schedulers) > 1:
            raise MisconfigurationException(
                f"`{type(self).__name__}.add_configure_optimizers_method_to_model` expects at most one optimizer "
                f"and one lr_scheduler to be 'AUTOMATIC', but found {optimizers + schedulers}. In this case the "
                "user is expected to link the argument groups and implement `configure_optimizers`, see "
                "https://lightning.ai/docs/pytorch/stable/common/lightning_cli.html"
                "#optimizers-and-learning-rate-schedulers"
            )
        optimizer_class = parser._optimizers[optimizers[0]][0]
        optimizer_init = self._get(self.config_init, optimizers[0])
        if not isinstance(optimizer_class, tuple):
            optimizer_init = _with_class_path(optimizer_class, optimizer_init)
        if not optimizer_init:  # the group exists but no optimizer was given: the module's own configure_optimizers
            return
        scheduler_init = None
        if schedulers:
            scheduler_class = parser._lr_schedulers[schedulers[0]][0]
            scheduler_init = self._get(self.config_init, schedulers[0])
            if not isinstance(scheduler_class, tuple):
                scheduler_init = _with_class_path(scheduler_class, scheduler_init)

        if _is_overridden("configure_optimizers", self.model, LightningModule):
            rank_zero_warn(
                f"`{type(self.model).__name__}.configure_optimizers` will be overridden by "
                f"`{type(self).__name__}.configure_optimizers`."
            )
        optimizer = instantiate_class(self.model.parameters(), optimizer_init)
        lr_scheduler = instantiate_class(optimizer, scheduler_init) if scheduler_init else None
        fn = partial(self.configure_optimizers, optimizer=optimizer, lr_scheduler=lr_scheduler)
        update_wrapper(fn, self.configure_optimizers)  # keeps a name and __wrapped__ for override checks
        self.model.configure_optimizers = MethodType(fn, self.model)

    def _get(self, config: "Namespace", key: str, default: Optional[Any] = None) -> Any:
        """`config[key]`, looked up inside the subcommand's group when there is one."""
        return config.get(str(self.subcommand), config).get(key, default)

    # -- running ----------------------------------------------------------------------------------------------------
    def _run_subcommand(self, subcommand: str) -> None:
        before = getattr(self, f"before_{subcommand}", None)
        if callable(before):
            before()
        method = getattr(self, subcommand, getattr(self.trainer, subcommand))  # a CLI method of that name wins
        method(**self._prepare_subcommand_kwargs(subcommand))
        after = getattr(self, f"after_{subcommand}", None)
        if callable(after):
            after()

    def _prepare_subcommand_kwargs(self, subcommand: str) -> Dict[str, Any]:
        accepted = self._subcommand_method_arguments[subcommand]
        kwargs = {k: v for k, v in self.config_init[subcommand].items() if k in accepted}
        kwargs["model"] = self.model
        if self.datamodule is not None:
            kwargs["datamodule"] = self.datamodule
        return kwargs

    def _set_seed(self) -> None:
        seed = self._get(self.config, "seed_everything")
        if seed is False:
            return
        seed = seed_everything(workers=True) if seed is True else seed_everything(seed, workers=True)
        # the seed actually used goes into the config, so the saved config reproduces the run
        if self.subcommand:
            self.config[self.subcommand]["seed_everything"] = seed
        else:
            self.config["seed_everything"] = seed


def _class_path_of(class_type: type) -> str:
    return f"{class_type.__module__}.{class_type.__name__}"


def _with_class_path(class_type: type, init_args: Optional[Union["Namespace", Dict[str, Any]]] = None) -> Dict[str, Any]:
    """{"class_path": ..., "init_args": ...} for a group added with a single class (no class_path in its config)."""
    if _JSONARGPARSE_SIGNATURES_AVAILABLE and isinstance(init_args, Namespace):
        init_args = init_args.as_dict()
    return {"class_path": _class_path_of(class_type), "init_args": init_args or {}}


def instantiate_class(args: Union[Any, Tuple[Any, ...]], init: Dict[str, Any]) -> Any:
    """Build `init["class_path"]` with the positional `args` (a value or a tuple) and `init["init_args"]`."""
    import importlib

    positional = args if isinstance(args, tuple) else (args,)
    module_name, _, class_name = init["class_path"].rpartition(".")
    if not module_name:
        raise MisconfigurationException(f"class_path {init['class_path']!r} is not a dotted import path")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(*positional, **init.get("init_args", {}))


def _short_description(component: object) -> Optional[str]:
    doc = getattr(component, "__doc__", None)
    if not doc:
        return None
    try:
        return docstring_parser.parse(doc).short_description
    except (ValueError, docstring_parser.ParseError) as e:
        rank_zero_warn(f"Failed parsing docstring for {component}: {e}")
        return None


def _returned_type(value: Union[Callable, type]) -> type:
    """The class itself, or the return annotation of a function that builds one."""
    if callable(value) and not isinstance(value, type):
        return inspect.signature(value).return_annotation
    return value


def _set_nested(data: Dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        data = data.setdefault(key, {})
    data[last] = value


class _ModuleInstantiator:
    """jsonargparse instantiator for the model / datamodule: builds the class and, when fastlight's core offers the
    hook, hands it the parsed config as the hyperparameters `save_hyperparameters` records."""

    def __init__(self, cli: LightningCLI, key: str) -> None:
        self.cli = cli
        self.key = key

    def __call__(self, class_type: Type[ModuleType], *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> ModuleType:
        from fastlight.core import hparams as _hparams_module

        context = getattr(_hparams_module, "_given_hyperparameters_context", None)
        if context is None:  # the core records the init arguments as they arrive
            return class_type(*args, **kwargs)
        self.cli._dump_config()
        hparams = dict(self.cli.config_dump.get(self.key, {}) or {})
        if "class_path" in hparams:  # the same flat form with or without subclass mode; the class under `_class_path`
            hparams = {"_class_path": hparams["class_path"], **(hparams.get("init_args") or {}), **(hparams.get("dict_kwargs") or {})}
        prefix = f"{self.key}."
        for target, value in applied_instantiation_links.items():
            if target.startswith(prefix):
                target = target[len(prefix):]
                target = target[len("init_args."):] if target.startswith("init_args.") else target
                _set_nested(hparams, target, value)
        with context(hparams=hparams, instantiator="fastlight.cli.instantiate_module"):
            return class_type(*args, **kwargs)


def instantiate_module(class_type: Type[ModuleType], config: Dict[str, Any]) -> ModuleType:
    """Rebuild a module from hyperparameters the CLI recorded (used by `load_from_checkpoint`)."""
    _require_jsonargparse()
    parser = ArgumentParser(exit_on_error=False)
    if "_class_path" in config:
        parser.add_subclass_arguments(class_type, "module", fail_untyped=False)
        config = {"class_path": config["_class_path"], "dict_kwargs": {k: v for k, v in config.items() if k != "_class_path"}}
    else:
        parser.add_class_arguments(class_type, "module", fail_untyped=False)
    parsed = parser.parse_object({"module": config})
    instantiate = getattr(parser, "instantiate", None) or parser.instantiate_classes
    return instantiate(parsed).module


__all__ = [
    "LightningArgumentParser",
    "LightningCLI",
    "LRSchedulerCallable",
    "LRSchedulerTypeTuple",
    "LRSchedulerTypeUnion",
    "OptimizerCallable",
    "ReduceLROnPlateau",
    "SaveConfigCallback",
    "instantiate_class",
]
