"""Opt-in speed knobs applied to the user's module: `trainer.fit(torch.compile(model))` and
`Trainer(channels_last=True)`.

torch.compile(model) returns a wrapper (OptimizedModule) around the LightningModule. The Trainer takes the module
inside and routes its `forward` and `*_step` methods through the wrapper's compile context, so the compiled code
runs with the options the user chose (mode, backend, fullgraph, ...) while the hooks, `self.log` and the loop stay
plain Python (as Lightning does). A submodule compiled inside the module (`self.net = torch.compile(net)`) needs
nothing from the Trainer.

channels_last: the module's 4-D parameters and buffers and the 4-D floating-point tensors of each training batch
take `torch.channels_last` memory format (values unchanged; convolutions on CUDA with mixed precision run faster
in it).
"""
from typing import Any

import torch
from torch import Tensor

_COMPILED_METHODS = ("forward", "training_step", "validation_step", "test_step", "predict_step")


def unwrap_compiled(model: Any) -> Any:
    """The LightningModule of a `torch.compile`d one, its forward and step methods compiled; anything else as is."""
    try:
        from torch._dynamo.eval_frame import OptimizedModule
    except ImportError:  # pragma: no cover - torch without dynamo
        return model
    if not isinstance(model, OptimizedModule):
        return model
    from fastlight.core.module import LightningModule

    inner = model._orig_mod
    if not isinstance(inner, LightningModule):
        raise TypeError(
            f"The compiled model wraps a {type(inner).__qualname__}; the Trainer needs a LightningModule:"
            " `torch.compile` your LightningModule (or a submodule inside it)."
        )
    if inner.__dict__.get("_fastlight_compiled") is not model:
        ctx = model.dynamo_ctx
        originals = inner.__dict__.get("_fastlight_uncompiled") or {n: getattr(inner, n) for n in _COMPILED_METHODS}
        for name, fn in originals.items():
            inner.__dict__[name] = ctx(fn)
        inner.__dict__["_fastlight_uncompiled"] = originals
        inner.__dict__["_fastlight_compiled"] = model
    return inner


def module_channels_last(module: torch.nn.Module) -> None:
    module.to(memory_format=torch.channels_last)


def batch_channels_last(batch: Any) -> Any:
    """4-D floating tensors of a (nested) batch in channels_last format; everything else as is."""
    if isinstance(batch, Tensor):
        if batch.dim() == 4 and batch.is_floating_point():
            return batch.contiguous(memory_format=torch.channels_last)
        return batch
    if isinstance(batch, list):
        return [batch_channels_last(b) for b in batch]
    if isinstance(batch, tuple):
        items = [batch_channels_last(b) for b in batch]
        return type(batch)(*items) if hasattr(batch, "_fields") else tuple(items)
    if isinstance(batch, dict):
        return type(batch)((k, batch_channels_last(v)) for k, v in batch.items())
    return batch
