"""LambdaCallback: build a callback from plain functions, one keyword per hook (on_train_epoch_end=fn, ...)."""
from typing import Any, Callable, Optional

from .callback import Callback

# every hook a Callback defines, i.e. every keyword LambdaCallback accepts
_HOOKS = tuple(
    name
    for name, value in vars(Callback).items()
    if callable(value) and not name.startswith("_") and name not in ("state_dict", "load_state_dict")
) + ("state_dict", "load_state_dict")


class LambdaCallback(Callback):
    """`LambdaCallback(on_train_epoch_end=lambda trainer, pl_module: ...)`: each given function becomes that hook.

    An unknown hook name is an error (TypeError), so a typo does not silently do nothing. The functions are put on a
    class made for this instance, so a loop that dispatches a hook only to callbacks whose class overrides it sees
    exactly the hooks given here.
    """

    def __init__(self, **hooks: Optional[Callable[..., Any]]) -> None:
        unknown = sorted(set(hooks) - set(_HOOKS))
        if unknown:
            raise TypeError(f"LambdaCallback got unknown hook name(s) {unknown}; valid names: {sorted(_HOOKS)}")
        methods = {}
        for name, fn in hooks.items():
            if fn is None:
                continue
            if not callable(fn):
                raise TypeError(f"LambdaCallback({name}=...) must be callable, got {type(fn).__name__}")
            methods[name] = staticmethod(fn)
        if methods:
            methods["__qualname__"] = type(self).__qualname__  # state_key stays "LambdaCallback"
            methods["__module__"] = type(self).__module__
            self.__class__ = type(type(self).__name__, (type(self),), methods)
