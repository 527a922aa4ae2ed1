"""torch.compile and LightningModules (`lightning.pytorch.utilities.compile`).

`torch.compile(module)` returns a wrapper that is not a LightningModule; `from_compiled` gives back the module
with its forward and step methods compiled instead, `to_uncompiled` undoes that.
"""
import sys
from typing import Any

import torch

_STEP_METHODS = ("forward", "training_step", "validation_step", "test_step", "predict_step")


def _lightning_module_class() -> Any:
    return getattr(sys.modules.get("fastlight.core.module"), "LightningModule", None)


def _is_lightning_module(obj: Any) -> bool:
    cls = _lightning_module_class()
    return cls is not None and isinstance(obj, cls)


def _optimized_module_class() -> type:
    from torch._dynamo.eval_frame import OptimizedModule

    return OptimizedModule


def from_compiled(model: Any) -> Any:
    """The LightningModule inside `torch.compile`'s result, its forward and *_step methods compiled in place."""
    if not isinstance(model, _optimized_module_class()):
        raise ValueError(f"`model` is required to be a `OptimizedModule`. Found a `{type(model).__name__}` instead.")
    module = model._orig_mod
    if not _is_lightning_module(module):
        raise ValueError(
            f"`model` is expected to be a compiled LightningModule. Found a `{type(module).__name__}` instead"
        )
    ctx = {"compiler": "dynamo", "dynamo_ctx": model.dynamo_ctx}
    for name in _STEP_METHODS:
        ctx[f"original_{name}"] = getattr(module, name)
        setattr(module, name, model.dynamo_ctx(getattr(module, name)))
    module._compiler_ctx = ctx
    return module


def to_uncompiled(model: Any) -> Any:
    """The plain LightningModule, from `torch.compile`'s result or from a module `from_compiled` returned."""
    if isinstance(model, _optimized_module_class()):
        module = model._orig_mod
        if not _is_lightning_module(module):
            raise TypeError(f"the compiled model should wrap a LightningModule, found {type(module).__name__}")
    elif _is_lightning_module(model):
        if getattr(model, "_compiler_ctx", None) is None:
            raise ValueError(
                "`model` is required to be a compiled LightningModule. Found a non-compiled LightningModule instead."
            )
        module = model
    else:
        raise ValueError("`model` must either be an instance of OptimizedModule or LightningModule")
    ctx = getattr(module, "_compiler_ctx", None)
    if ctx is not None:
        for name in _STEP_METHODS:
            setattr(module, name, ctx[f"original_{name}"])
        module._compiler_ctx = None
    return module


def _maybe_unwrap_optimized(model: Any) -> Any:
    """What the Trainer does with a `torch.compile` result: the module it wraps, compiled (see from_compiled)."""
    if isinstance(model, torch.nn.Module) and isinstance(model, _optimized_module_class()):
        return from_compiled(model)
    return model


__all__ = ["from_compiled", "to_uncompiled"]
