"""Signature checks for user hooks (`lightning.pytorch.utilities.signature_utils`)."""
import inspect
from typing import Callable, Optional


def is_param_in_hook_signature(hook_fx: Callable, param: str, explicit: bool = False,
                               min_args: Optional[int] = None) -> bool:
    """Whether `hook_fx` takes a parameter named `param` (or, unless `explicit`, any `*args`), or at least
    `min_args` positional parameters."""
    wrapped = getattr(hook_fx, "__wrapped__", None)
    if wrapped is not None:  # a decorated hook (`@torch.no_grad()`): the user's function, `self` first
        parameters = inspect.getfullargspec(wrapped)
        args = parameters.args[1:]
    else:
        parameters = inspect.getfullargspec(hook_fx)
        args = parameters.args[1:] if inspect.ismethod(hook_fx) else parameters.args
    return (
        param in args
        or (not explicit and parameters.varargs is not None)
        or (isinstance(min_args, int) and len(args) >= min_args)
    )


__all__ = ["is_param_in_hook_signature"]
