"""LightningOptimizer: what `self.optimizers()` and `optimizer_step` see; `step(closure)` goes through the trainer.

What it does not define itself (param_groups, state, defaults, ...) is read live from the wrapped optimizer, so a
`load_state_dict` on either one is seen by both; it passes `isinstance` checks for the wrapped class, as
Lightning's does.
"""
from contextlib import contextmanager
from typing import Any, Callable, Generator, List, Optional, Tuple

import torch

from .optimizer_config import configure_schedulers, init_optimizers_and_schedulers, parse_optimizers


def _do_nothing_closure() -> None:
    return None


def _rewrap(optimizer: torch.optim.Optimizer) -> "LightningOptimizer":
    return LightningOptimizer(optimizer)


class LightningOptimizer:
    def __init__(self, optimizer: torch.optim.Optimizer):
        self._optimizer = optimizer
        self._trainer = None
        # manual optimization counts steps through these
        self._on_before_step: Callable[[], None] = _do_nothing_closure
        self._on_after_step: Callable[[], None] = _do_nothing_closure
        self.__class__ = type("Lightning" + optimizer.__class__.__name__, (self.__class__, optimizer.__class__), {})

    @property
    def optimizer(self) -> torch.optim.Optimizer:
        return self._optimizer

    @classmethod
    def _to_lightning_optimizer(cls, optimizer: Any, trainer: Any) -> "LightningOptimizer":
        lightning_optimizer = optimizer if isinstance(optimizer, LightningOptimizer) else cls(optimizer)
        lightning_optimizer._trainer = trainer
        return lightning_optimizer

    @contextmanager
    def toggle_model(self, sync_grad: bool = True) -> Generator[None, None, None]:
        module = self._trainer.lightning_module
        module.toggle_optimizer(self)
        yield
        module.untoggle_optimizer(self)

    def step(self, closure: Optional[Callable[[], Any]] = None, **kwargs: Any) -> Any:
        """Run the closure (training_step, zero_grad, backward), the pre-step hooks and clipping, then the step."""
        self._on_before_step()
        if closure is None:
            closure = _do_nothing_closure
        elif not callable(closure):
            raise TypeError("When `optimizer.step(closure)` is called, the closure should be callable")
        output = self._trainer._precision.optimizer_step(self._optimizer, self._trainer, closure, **kwargs)
        self._on_after_step()
        return output

    def __reduce__(self) -> tuple:
        # the per-instance class ("LightningSGD") cannot be looked up by name: pickle the wrapped optimizer and rewrap
        # it (a trainer that holds its optimizers then pickles, e.g. with a callback that keeps it)
        state = {k: v for k, v in self.__dict__.items() if k != "_optimizer"}
        return _rewrap, (self._optimizer,), state

    def __getattr__(self, item: str) -> Any:
        if item == "_optimizer":  # not set yet (unpickling): no recursion
            raise AttributeError(item)
        return getattr(self._optimizer, item)

    def zero_grad(self, set_to_none: bool = True) -> None:
        self._optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict:
        return self._optimizer.state_dict()

    def load_state_dict(self, state_dict: dict) -> None:
        self._optimizer.load_state_dict(state_dict)


# Lightning's names for turning what `configure_optimizers` returns into optimizers and scheduler configs
# (`lightning.pytorch.core.optimizer`): the steps the Trainer runs at the start of a fit (core/optimizer_config.py).
def _init_optimizers_and_lr_schedulers(model: Any) -> Tuple[List[Any], List[Any]]:
    """`model.configure_optimizers()`, parsed and validated: (optimizers, `LRSchedulerConfig`s)."""
    return init_optimizers_and_schedulers(model)


def _configure_optimizers(optim_conf: Any) -> Tuple[List[Any], List[Any], Optional[str]]:
    """What `configure_optimizers` returned -> (optimizers, the scheduler entries as given, monitor)."""
    return parse_optimizers(optim_conf)


def _configure_schedulers_automatic_opt(schedulers: List[Any], monitor: Optional[str]) -> List[Any]:
    """Scheduler entries -> `LRSchedulerConfig`s, for automatic optimization (the loop steps them)."""
    return configure_schedulers(schedulers, monitor, automatic=True)


def _configure_schedulers_manual_opt(schedulers: List[Any]) -> List[Any]:
    """Scheduler entries -> `LRSchedulerConfig`s, for manual optimization (the user steps them)."""
    return configure_schedulers(schedulers, None, automatic=False)
