"""Tensor creation helpers (`lightning.fabric.utilities.init`): skip torch.nn.init's initializations."""
import contextlib
from typing import Any, Iterator, Optional

import torch


class _SkipInit(torch.overrides.TorchFunctionMode):
    """torch.nn.init.* leave the tensor as it is (weights about to be loaded need no initialization)."""

    def __torch_function__(self, func: Any, types: Any, args: tuple = (), kwargs: Optional[dict] = None) -> Any:
        if getattr(func, "__module__", None) == "torch.nn.init":
            return kwargs["tensor"] if kwargs and "tensor" in kwargs else args[0]
        return func(*args, **(kwargs or {}))


@contextlib.contextmanager
def skip_init() -> Iterator[None]:
    """Modules created inside keep their parameters' memory uninitialized (`Trainer.init_module(empty_init=True)`)."""
    with _SkipInit():
        yield
