"""save_hyperparameters / hparams: the init arguments of a module or datamodule, as Lightning records them."""
import copy
import inspect
import types
from argparse import Namespace
from typing import Any, MutableMapping, Optional, Sequence, Union

from fastlight.utilities.attribute_dict import AttributeDict

_PRIMITIVE_TYPES = (bool, int, float, str)


def _init_args_of_frame(frame: types.FrameType) -> dict:
    """The arguments of the `__init__` running in `frame`, `**kwargs` expanded, without self/__class__."""
    code = frame.f_code
    local_vars = frame.f_locals
    nargs = code.co_argcount + code.co_kwonlyargcount
    names = list(code.co_varnames[:nargs])
    flags = code.co_flags
    var_kw = None
    if flags & inspect.CO_VARARGS:
        nargs += 1
    if flags & inspect.CO_VARKEYWORDS:
        var_kw = code.co_varnames[nargs]
    args = {}
    for n in names:
        if n in ("self", "__class__"):
            continue
        if n in local_vars:
            args[n] = local_vars[n]
    if var_kw is not None and isinstance(local_vars.get(var_kw), dict):
        args.update(local_vars[var_kw])
    return args


def _collect_init_args(frame: Optional[types.FrameType], obj: Any) -> dict:
    """Walk up the chain of `__init__` frames of `obj` (subclass calling super().__init__); the subclass wins."""
    chain = []
    while frame is not None and frame.f_code.co_name == "__init__" and frame.f_locals.get("self") is obj:
        chain.append(_init_args_of_frame(frame))
        frame = frame.f_back
    merged: dict = {}
    for args in reversed(chain):  # outermost (most derived) frame last, so it overrides
        merged.update(args)
    return merged


class HyperparametersMixin:
    __jit_unused_properties__ = ["hparams", "hparams_initial"]

    def __init__(self) -> None:
        super().__init__()
        self._log_hyperparams = False

    def save_hyperparameters(
        self,
        *args: Any,
        ignore: Optional[Union[Sequence[str], str]] = None,
        frame: Optional[types.FrameType] = None,
        logger: bool = True,
    ) -> None:
        """Save the init arguments (or the named ones, or a given dict/Namespace) into `self.hparams`."""
        self._log_hyperparams = logger
        if len(args) == 1 and not isinstance(args[0], str):
            hp = args[0]
            if isinstance(hp, Namespace):
                hp = vars(hp)
            if isinstance(hp, dict):
                hp = AttributeDict(hp)
            elif isinstance(hp, _PRIMITIVE_TYPES):
                raise ValueError(f"Primitives {_PRIMITIVE_TYPES} are not allowed.")
            # the init argument it came from, so load_from_checkpoint can pass it back under that name
            if frame is None:
                current = inspect.currentframe()
                frame = current.f_back if current is not None else None
            init_args = _collect_init_args(frame, self) if frame is not None else {}
            names = [k for k, v in init_args.items() if v is args[0]]
            self._hparams_name = names[0] if names else None
            self._set_hparams(hp)
            if ignore and isinstance(self._hparams, MutableMapping):  # Lightning applies `ignore` to a given dict too
                self.remove_ignored_hparams([ignore] if isinstance(ignore, str) else list(ignore))
            self._hparams_initial = copy.deepcopy(self._hparams)
            return
        if frame is None:
            current = inspect.currentframe()
            frame = current.f_back if current is not None else None
        init_args = _collect_init_args(frame, self) if frame is not None else {}
        if not init_args and not args:
            return
        if ignore is None:
            ignore = []
        elif isinstance(ignore, str):
            ignore = [ignore]
        ignore = set(ignore)
        if args:
            missing = [a for a in args if a not in init_args]
            if missing:
                raise ValueError(f"save_hyperparameters: {missing} are not arguments of {type(self).__name__}.__init__")
            hp = {k: init_args[k] for k in args if k not in ignore}
        else:
            hp = {k: v for k, v in init_args.items() if k not in ignore}
        self._hparams_name = "kwargs" if hp else None  # checkpoint's hparams_name: the hparams are init kwargs
        self._set_hparams(hp)
        self.remove_ignored_hparams(list(ignore))  # a subclass may drop what its base class saved
        self._hparams_initial = copy.deepcopy(self._hparams)

    def remove_ignored_hparams(self, ignore_list: Sequence[str]) -> None:
        """Drop the named hyperparameters from `hparams` (names not present are skipped), e.g. ones a base class
        saved that a subclass does not want."""
        for key in ignore_list:
            self.hparams.pop(key, None)

    def _set_hparams(self, hp: Union[MutableMapping, Namespace]) -> None:
        if isinstance(hp, Namespace):
            hp = vars(hp)
        if isinstance(hp, dict):
            hp = AttributeDict(hp)
        if isinstance(hp, dict) and isinstance(self.hparams, dict):
            self.hparams.update(hp)
        else:
            self._hparams = hp

    @property
    def hparams(self) -> Union[AttributeDict, MutableMapping]:
        if not hasattr(self, "_hparams"):
            self._hparams = AttributeDict()
        return self._hparams

    @property
    def hparams_initial(self) -> AttributeDict:
        if not hasattr(self, "_hparams_initial"):
            return AttributeDict()
        return copy.deepcopy(self._hparams_initial)
