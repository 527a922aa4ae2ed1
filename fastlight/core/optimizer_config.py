"""Parsing `configure_optimizers` (every return form Lightning accepts) into optimizers and scheduler configs."""
import inspect
from dataclasses import fields
from typing import Any, List, Optional, Tuple

import torch
from torch.optim.lr_scheduler import OneCycleLR, ReduceLROnPlateau

from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.model_helpers import is_overridden
from fastlight.utilities.rank_zero import rank_zero_warn
from fastlight.utilities.types import LRSchedulerConfig

try:  # torch >= 2.0 names the base class LRScheduler
    from torch.optim.lr_scheduler import LRScheduler as _LRScheduler
except ImportError:  # pragma: no cover
    from torch.optim.lr_scheduler import _LRScheduler  # type: ignore


class OptimizerConfigError(MisconfigurationException, ValueError):
    """`configure_optimizers` returned something Lightning does not accept."""


_UNKNOWN = (
    "Unknown configuration for model optimizers."
    " Output from `model.configure_optimizers()` should be one of:\n"
    " * `Optimizer`\n"
    " * [`Optimizer`]\n"
    " * ([`Optimizer`], [`LRScheduler`])\n"
    ' * {"optimizer": `Optimizer`, (optional) "lr_scheduler": `LRScheduler`}\n'
    ' * A list of the previously described dict format, with an optional "frequency" key (deprecated)'
)


class NoOptimizer(torch.optim.Optimizer):
    """Stands in when `configure_optimizers` returns None (Lightning does the same): `step(closure)` runs the closure
    (training_step and backward), nothing is updated or zeroed, and it saves an empty state."""

    def __init__(self) -> None:
        super().__init__([torch.zeros(1)], {})

    def add_param_group(self, param_group: Any) -> None:
        if self.param_groups:  # the one placeholder group of __init__ only
            return
        super().add_param_group(param_group)

    def step(self, closure: Any = None) -> Any:
        return closure() if closure is not None else None

    def zero_grad(self, set_to_none: bool = True) -> None:
        pass

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state_dict: Any) -> None:
        pass

    def __repr__(self) -> str:
        return "No Optimizer"


def _is_optimizer(x: Any) -> bool:
    return isinstance(x, torch.optim.Optimizer) or (callable(getattr(x, "step", None)) and hasattr(x, "param_groups"))


def parse_optimizers(conf: Any) -> Tuple[List[Any], List[Any], Optional[str]]:
    """-> (optimizers, raw scheduler entries, monitor)."""
    monitor = None
    if conf is None:
        rank_zero_warn("`LightningModule.configure_optimizers` returned `None`, this fit will run with no optimizer")
        return [NoOptimizer()], [], None
    if _is_optimizer(conf):
        return [conf], [], None
    if (
        isinstance(conf, (list, tuple)) and len(conf) == 2 and isinstance(conf[0], list)
        and all(_is_optimizer(o) for o in conf[0])
    ):
        opts = list(conf[0])
        scheds = conf[1] if isinstance(conf[1], (list, tuple)) else [conf[1]]
        return opts, list(scheds), None
    if isinstance(conf, dict):
        _check_optim_dict(conf)
        monitor = conf.get("monitor")
        scheds = [conf["lr_scheduler"]] if "lr_scheduler" in conf else []
        return [conf["optimizer"]], scheds, monitor
    if isinstance(conf, (list, tuple)) and conf and all(isinstance(d, dict) for d in conf):
        for d in conf:
            _check_optim_dict(d)
        opts = [d["optimizer"] for d in conf]
        scheds = [d["lr_scheduler"] for d in conf if "lr_scheduler" in d]
        monitors = [d.get("monitor") for d in conf]
        monitor = monitors[0] if len(set(m for m in monitors if m is not None)) <= 1 else None
        return opts, scheds, next((m for m in monitors if m is not None), None) if monitor is None else monitor
    if isinstance(conf, (list, tuple)) and conf and all(_is_optimizer(o) for o in conf):
        return list(conf), [], None
    raise OptimizerConfigError(_UNKNOWN + f"\nGot: {type(conf).__name__}: {conf!r}")


def _check_optim_dict(d: dict) -> None:
    if "optimizer" not in d:
        raise OptimizerConfigError(
            f"`configure_optimizers` returned a dict without the required key 'optimizer': keys {sorted(d)}"
        )
    if not _is_optimizer(d["optimizer"]):
        raise OptimizerConfigError(f"`configure_optimizers` dict 'optimizer' is not an optimizer: {d['optimizer']!r}")
    extra = set(d) - {"optimizer", "lr_scheduler", "monitor"}
    if extra:  # Lightning warns and ignores them (code that trained under Lightning keeps training)
        hint = (" The `frequency` key (optimizer frequencies) was removed in Lightning 2.0 and is ignored: use manual"
                " optimization to alternate optimizers." if "frequency" in extra else "")
        rank_zero_warn(f"Found unsupported keys in the optimizer configuration: {extra}.{hint}",
                       category=RuntimeWarning)


_MANUAL_IGNORED_KEYS = ("reduce_on_plateau", "monitor", "strict")


class OptimizationModeError(MisconfigurationException, RuntimeError):
    """Several optimizers (or a `training_step(..., optimizer_idx)`) with automatic optimization."""


def validate_optimization_mode(optimizers: List[Any], module: Any) -> None:
    """Lightning 2.x steps several optimizers only in manual optimization, and no training_step takes
    `optimizer_idx` any more."""
    try:
        takes_idx = "optimizer_idx" in inspect.signature(module.training_step).parameters
    except (TypeError, ValueError):
        takes_idx = False
    if takes_idx:
        raise OptimizationModeError(
            "Training with multiple optimizers is only supported with manual optimization. Remove the `optimizer_idx`"
            " argument from `training_step`, set `self.automatic_optimization = False` and access your optimizers"
            " in `training_step` with `opt1, opt2, ... = self.optimizers()`."
        )
    if module.automatic_optimization and len(optimizers) > 1:
        raise OptimizationModeError(
            "Training with multiple optimizers is only supported with manual optimization. Set"
            " `self.automatic_optimization = False`, then access your optimizers in `training_step` with"
            " `opt1, opt2, ... = self.optimizers()`."
        )


def configure_schedulers(schedulers: List[Any], monitor: Optional[str], automatic: bool) -> List[LRSchedulerConfig]:
    supported = {f.name for f in fields(LRSchedulerConfig)}
    configs = []
    for sched in schedulers:
        if isinstance(sched, dict):
            extra = set(sched) - supported - {"opt_idx"}
            if extra:
                rank_zero_warn(
                    f"Found unsupported keys in the lr scheduler dict: {extra}."
                    " HINT: remove them from the output of `configure_optimizers`.",
                    category=RuntimeWarning,
                )
            sched = {k: v for k, v in sched.items() if k in supported}
            if "scheduler" not in sched:
                raise OptimizerConfigError(
                    'The lr scheduler dict must have the key "scheduler" with its item being an lr scheduler'
                )
            if not automatic:
                # the user steps the scheduler: what decides when or how the loop steps it is dropped (said once);
                # interval/frequency/name stay (LearningRateMonitor reads them)
                ignored = [k for k in sched if k in _MANUAL_IGNORED_KEYS]
                if ignored:
                    rank_zero_warn(
                        f"The lr scheduler dict contains the key(s) {ignored}, but the keys will be ignored."
                        " You need to call `lr_scheduler.step()` manually in manual optimization.",
                        category=RuntimeWarning,
                    )
                configs.append(LRSchedulerConfig(**{k: v for k, v in sched.items() if k not in _MANUAL_IGNORED_KEYS}))
                continue
            if "interval" in sched and sched["interval"] not in ("step", "epoch"):
                raise OptimizerConfigError(
                    f'The "interval" key in lr scheduler dict must be "step" or "epoch" but is "{sched["interval"]}"'
                )
            if "frequency" in sched and (not isinstance(sched["frequency"], int) or sched["frequency"] < 1):
                raise OptimizerConfigError(
                    f'The "frequency" key in lr scheduler dict must be a positive int, got {sched["frequency"]!r}'
                )
            sched["reduce_on_plateau"] = sched.get(
                "reduce_on_plateau", isinstance(sched["scheduler"], ReduceLROnPlateau)
            )
            if sched["reduce_on_plateau"] and sched.get("monitor") is None:
                raise OptimizerConfigError(
                    "The lr scheduler dict must include a monitor when a `ReduceLROnPlateau` scheduler is used."
                    ' For example: {"optimizer": optimizer, "lr_scheduler":'
                    ' {"scheduler": scheduler, "monitor": "your_loss"}}'
                )
            if isinstance(sched["scheduler"], OneCycleLR) and sched.get("interval", "epoch") == "epoch":
                rank_zero_warn(
                    "A `OneCycleLR` scheduler is using 'interval': 'epoch'."
                    " Are you sure you didn't mean 'interval': 'step'?",
                    category=RuntimeWarning,
                )
            configs.append(LRSchedulerConfig(**sched))
        elif isinstance(sched, ReduceLROnPlateau) and automatic:
            if monitor is None:
                raise OptimizerConfigError(
                    "`configure_optimizers` must include a monitor when a `ReduceLROnPlateau` scheduler is used."
                    ' For example: {"optimizer": optimizer, "lr_scheduler": scheduler, "monitor": "metric_to_track"}'
                )
            configs.append(LRSchedulerConfig(sched, reduce_on_plateau=True, monitor=monitor))
        else:
            configs.append(LRSchedulerConfig(sched))
    return configs


def validate_schedulers(configs: List[LRSchedulerConfig], optimizers: List[Any], module: Any) -> None:
    custom_step = is_overridden("lr_scheduler_step", module)  # on the class, or set on the instance
    for config in configs:
        sched = config.scheduler
        # checkpoints save and restore every scheduler: refuse one that cannot be, before training, as Lightning does
        if not (callable(getattr(sched, "state_dict", None)) and callable(getattr(sched, "load_state_dict", None))):
            raise TypeError(
                f"The provided lr scheduler `{type(sched).__name__}` is invalid."
                " It should have `state_dict` and `load_state_dict` methods defined."
            )
        # (manual optimization: the user steps it, any object will do)
        if not isinstance(sched, (_LRScheduler, ReduceLROnPlateau)) and not custom_step and module.automatic_optimization:
            raise OptimizerConfigError(
                f"The provided lr scheduler `{type(sched).__name__}` doesn't follow PyTorch's LRScheduler API."
                " You should override the `LightningModule.lr_scheduler_step` hook with your own logic if you are"
                " using a custom LR scheduler."
            )
        opt = getattr(sched, "optimizer", None)
        if opt is not None and not any(opt is o for o in optimizers):
            raise OptimizerConfigError(
                f"Some schedulers are attached with an optimizer that wasn't returned from `configure_optimizers`"
                f" (`{type(sched).__name__}`)."
            )


def init_optimizers_and_schedulers(module: Any) -> Tuple[List[Any], List[LRSchedulerConfig]]:
    """Call the module's `configure_optimizers` (through its trainer when that runs it, as in a fit) and parse and
    validate what it returns: (optimizers, scheduler configs). What the Trainer does at the start of a fit."""
    trainer = getattr(module, "_trainer", None)
    if trainer is not None and getattr(trainer, "lightning_module", None) is module:
        conf = trainer._call_module("configure_optimizers")
    else:
        conf = module.configure_optimizers()
    optimizers, schedulers, monitor = parse_optimizers(conf)
    configs = configure_schedulers(schedulers, monitor, module.automatic_optimization)
    validate_optimization_mode(optimizers, module)
    validate_schedulers(configs, optimizers, module)
    return optimizers, configs
