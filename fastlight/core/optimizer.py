"""LightningOptimizer: what `self.optimizers()` and `optimizer_step` see; `step(closure)` goes through the trainer.

What it does not define itself (param_groups, state, defaults, ...) is read live from the wrapped optimizer, so a
`load_state_dict` on either one is seen by both; it passes `isinstance` checks for the wrapped class, as
Lightning's does.
"""
from contextlib import contextmanager
from typing import Any, Callable, Generator, Optional

import torch


def _do_nothing_closure() -> None:
    return None


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

