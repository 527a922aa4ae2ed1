"""LearningRateMonitor: log each optimizer's learning rate (and momentum / weight decay) with Lightning's key names.

Keys: "lr-<OptimizerClass>", "-<n>" for the n-th further optimizer of the same class, "/pg<i>" (or the group's
"name") when an optimizer has several param groups; a scheduler config's `name` replaces the whole prefix.
"""
import itertools
from collections import defaultdict
from typing import Any, DefaultDict, Dict, List, Optional, Tuple

import torch

from fastlight.utilities.rank_zero import rank_zero_warn

from . import _trainer_access as access
from .callback import Callback


class LearningRateMonitor(Callback):
    """Args:
        logging_interval: "step", "epoch", or None (each scheduler at its own interval; optimizers without one per step).
        log_momentum: also log momentum (betas[0] for Adam-like optimizers) as "<key>-momentum".
        log_weight_decay: also log weight decay as "<key>-weight_decay".
    """

    def __init__(self, logging_interval: Optional[str] = None, log_momentum: bool = False, log_weight_decay: bool = False) -> None:
        if logging_interval not in (None, "step", "epoch"):
            raise ValueError(f"LearningRateMonitor(logging_interval={logging_interval!r}) should be `step` or `epoch` or `None`.")
        self.logging_interval = logging_interval
        self.log_momentum = log_momentum
        self.log_weight_decay = log_weight_decay
        self.lrs: Dict[str, List[float]] = {}
        self.last_momentum_values: Dict[str, Optional[float]] = {}
        self.last_weight_decay_values: Dict[str, Optional[float]] = {}

    def on_train_start(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if not trainer.loggers:
            raise ValueError("Cannot use `LearningRateMonitor` callback with `Trainer` that has no logger.")
        if self.log_momentum:

            def missing(key: str) -> bool:
                if trainer.lr_scheduler_configs:
                    return any(key not in c.scheduler.optimizer.defaults for c in trainer.lr_scheduler_configs)
                return any(key not in _unwrap(o).defaults for o in trainer.optimizers)

            if missing("momentum") and missing("betas"):
                rank_zero_warn(
                    "You have set log_momentum=True, but some optimizers do not"
                    " have momentum. This will log a value 0 for the momentum.",
                    category=RuntimeWarning,
                )
        names: List[List[str]] = []
        sched_keys, with_sched, with_sched_types = self._find_names_from_schedulers(trainer.lr_scheduler_configs)
        names.extend(sched_keys)
        opt_keys, _ = self._find_names_from_optimizers(trainer.optimizers, with_sched, with_sched_types)
        names.extend(opt_keys)
        flat = list(itertools.chain.from_iterable(names))
        self.lrs = {n: [] for n in flat}
        self.last_momentum_values = {n + "-momentum": None for n in flat}
        self.last_weight_decay_values = {n + "-weight_decay": None for n in flat}

    def on_train_batch_start(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if not access.should_update_logs(trainer):
            return
        if self.logging_interval != "epoch":
            stats = self._extract_stats(trainer, "step" if self.logging_interval is None else "any")
            if stats:
                step = access.batches_that_stepped(trainer)
                for logger in trainer.loggers:
                    logger.log_metrics(stats, step=step)

    def on_train_epoch_start(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
        if self.logging_interval != "step":
            stats = self._extract_stats(trainer, "epoch" if self.logging_interval is None else "any")
            if stats:
                step = access.batches_that_stepped(trainer)
                for logger in trainer.loggers:
                    logger.log_metrics(stats, step=step)

    def _extract_stats(self, trainer: Any, interval: str) -> Dict[str, float]:
        stats: Dict[str, float] = {}
        sched_keys, with_sched, with_sched_types = self._find_names_from_schedulers(trainer.lr_scheduler_configs)
        self._remap_keys(sched_keys)
        for names, config in zip(sched_keys, trainer.lr_scheduler_configs):
            if interval in (config.interval, "any"):
                stats.update(self._get_optimizer_stats(config.scheduler.optimizer, names))
        opt_keys, without_sched = self._find_names_from_optimizers(trainer.optimizers, with_sched, with_sched_types)
        self._remap_keys(opt_keys)
        for opt, names in zip(without_sched, opt_keys):
            stats.update(self._get_optimizer_stats(opt, names))
        device = access.root_device(trainer)
        trainer.callback_metrics.update({k: torch.tensor(v, device=device) for k, v in stats.items()})
        return stats

    def _get_optimizer_stats(self, optimizer: Any, names: List[str]) -> Dict[str, float]:
        stats: Dict[str, float] = {}
        use_betas = "betas" in optimizer.defaults
        for group, name in zip(optimizer.param_groups, names):
            lr = group["lr"]
            self.lrs.setdefault(name, []).append(lr)
            stats[name] = lr
            if self.log_momentum:
                momentum = group["betas"][0] if use_betas else group.get("momentum", 0)
                self.last_momentum_values[f"{name}-momentum"] = momentum
                stats[f"{name}-momentum"] = momentum
            if self.log_weight_decay:
                wd = group["weight_decay"]
                self.last_weight_decay_values[f"{name}-weight_decay"] = wd
                stats[f"{name}-weight_decay"] = wd
        return stats

    def _remap_keys(self, names: List[List[str]], token: str = "/pg1") -> None:
        """Param groups were added to an optimizer: its history moves from "lr-X" to "lr-X/pg1"."""
        for group_names in names:
            for new_name in group_names:
                old_name = new_name.replace(token, "")
                if token in new_name and old_name in self.lrs:
                    self.lrs[new_name] = self.lrs.pop(old_name)
                elif new_name not in self.lrs:
                    self.lrs[new_name] = []

    @staticmethod
    def _add_prefix(name: str, optimizer_cls: type, seen_types: DefaultDict[type, int]) -> str:
        if optimizer_cls not in seen_types:
            return name
        count = seen_types[optimizer_cls]
        return name + f"-{count - 1}" if count > 1 else name

    @staticmethod
    def _add_suffix(name: str, param_groups: List[dict], index: int, use_names: bool = True) -> str:
        if len(param_groups) > 1:
            if not use_names:
                return f"{name}/pg{index + 1}"
            return f"{name}/{param_groups[index].get('name', f'pg{index + 1}')}"
        if use_names:
            pg_name = param_groups[index].get("name")
            return f"{name}/{pg_name}" if pg_name else name
        return name

    @staticmethod
    def _duplicate_param_group_names(param_groups: List[dict]) -> set:
        names = [pg.get("name", f"pg{i}") for i, pg in enumerate(param_groups, start=1)]
        return {n for n in names if names.count(n) > 1}

    def _find_names_from_schedulers(self, configs: List[Any]) -> Tuple[List[List[str]], List[Any], DefaultDict[type, int]]:
        names: List[List[str]] = []
        seen: List[Any] = []
        seen_types: DefaultDict[type, int] = defaultdict(int)
        for config in configs:
            sched = config.scheduler
            name = config.name if getattr(config, "name", None) is not None else "lr-" + sched.optimizer.__class__.__name__
            names.append(self._check_duplicates_and_update_name(sched.optimizer, name, seen, seen_types, config))
        return names, seen, seen_types

    def _find_names_from_optimizers(
        self, optimizers: List[Any], seen: List[Any], seen_types: DefaultDict[type, int]
    ) -> Tuple[List[List[str]], List[Any]]:
        names: List[List[str]] = []
        without_sched: List[Any] = []
        for optimizer in optimizers:
            optimizer = _unwrap(optimizer)
            if optimizer in seen:
                continue
            name = "lr-" + optimizer.__class__.__name__
            names.append(self._check_duplicates_and_update_name(optimizer, name, seen, seen_types, None))
            without_sched.append(optimizer)
        return names, without_sched

    def _check_duplicates_and_update_name(
        self, optimizer: Any, name: str, seen: List[Any], seen_types: DefaultDict[type, int], config: Any
    ) -> List[str]:
        seen.append(optimizer)
        cls = type(optimizer)
        if config is None or getattr(config, "name", None) is None:
            seen_types[cls] += 1
        groups = optimizer.param_groups
        duplicates = self._duplicate_param_group_names(groups)
        if duplicates:
            raise ValueError(
                "A single `Optimizer` cannot have multiple parameter groups with identical "
                f"`name` values. {name} has duplicated parameter group names {duplicates}"
            )
        name = self._add_prefix(name, cls, seen_types)
        return [self._add_suffix(name, groups, i) for i in range(len(groups))]


def _unwrap(optimizer: Any) -> Any:
    """LightningOptimizer-style wrappers keep the real optimizer in `.optimizer`."""
    return optimizer.optimizer if hasattr(optimizer, "optimizer") else optimizer
