"""Attribute lookup across a LightningModule, its hparams and the trainer's datamodule (Lightning's
`lightning_hasattr` / `lightning_getattr` / `lightning_setattr`), used by the tuner to read and write `lr` and
`batch_size`; and Lightning's helpers for init arguments and hyperparameters."""
import inspect
import pickle
import types
from typing import Any, Dict, List, MutableMapping, Optional, Sequence, Tuple, Union

from .attribute_dict import AttributeDict  # noqa: F401 (Lightning's parsing module exports it)
from .rank_zero import rank_zero_warn


def _owners_with(model: Any, name: str) -> List[Any]:
    """Every place that holds `name`, in Lightning's order: the module, its hparams, the trainer's datamodule, the
    datamodule's hparams. Reading uses the first; writing updates all of them."""
    found = []
    if hasattr(model, name):
        found.append(model)
    hparams = getattr(model, "hparams", None)
    if hparams is not None and _holds(hparams, name):
        found.append(hparams)
    trainer = getattr(model, "_trainer", None)
    datamodule = getattr(trainer, "datamodule", None) if trainer is not None else None
    if datamodule is not None:
        if hasattr(datamodule, name):
            found.append(datamodule)
        dm_hparams = getattr(datamodule, "hparams", None)
        if dm_hparams is not None and _holds(dm_hparams, name):
            found.append(dm_hparams)
    return found


def _holds(container: Any, name: str) -> bool:
    if isinstance(container, dict):
        return name in container
    return hasattr(container, name)


def lightning_hasattr(model: Any, name: str) -> bool:
    """True when the module, its hparams or the trainer's datamodule (or its hparams) has `name`."""
    return bool(_owners_with(model, name))


def lightning_getattr(model: Any, name: str) -> Any:
    """The value of `name` from the first place that holds it (module, hparams, datamodule, datamodule hparams)."""
    owners = _owners_with(model, name)
    if not owners:
        raise AttributeError(
            f"{name} is neither stored in the model namespace nor the `hparams` namespace/dict, nor the datamodule."
        )
    owner = owners[0]
    return owner[name] if isinstance(owner, dict) else getattr(owner, name)


def lightning_setattr(model: Any, name: str, value: Any) -> None:
    """Write `value` to `name` everywhere it is held (module, hparams, datamodule, datamodule hparams)."""
    owners = _owners_with(model, name)
    if not owners:
        raise AttributeError(
            f"{name} is neither stored in the model namespace nor the `hparams` namespace/dict, nor the datamodule."
        )
    for owner in owners:
        if isinstance(owner, dict):
            owner[name] = value
        else:
            setattr(owner, name, value)


# --- init arguments and hyperparameters (`lightning.pytorch.utilities.parsing`) ---------------------------------------


def is_picklable(obj: object) -> bool:
    """Whether pickle.dumps(obj) succeeds."""
    try:
        pickle.dumps(obj)
    except (pickle.PickleError, AttributeError, RuntimeError, TypeError):
        return False
    return True


def clean_namespace(hparams: MutableMapping) -> None:
    """Drop the entries that cannot be pickled, with a warning naming each."""
    for key in [k for k, v in hparams.items() if not is_picklable(v)]:
        rank_zero_warn(
            f"Attribute '{key}' removed from hparams because it cannot be pickled. You can suppress this warning by"
            f" setting `self.save_hyperparameters(ignore=['{key}'])`."
        )
        del hparams[key]


def parse_class_init_keys(cls: type) -> Tuple[str, Optional[str], Optional[str]]:
    """The names `cls.__init__` gives to self, to *args (None if absent) and to **kwargs (None if absent)."""
    params = list(inspect.signature(cls.__init__).parameters.values())
    self_name = params[0].name
    var_args = next((p.name for p in params[1:] if p.kind is p.VAR_POSITIONAL), None)
    var_kwargs = next((p.name for p in params[1:] if p.kind is p.VAR_KEYWORD), None)
    return self_name, var_args, var_kwargs


def _frame_init_args(frame: types.FrameType) -> Tuple[Optional[Any], Dict[str, Any]]:
    """(self, the init arguments) of the `__init__` running in `frame` (**kwargs expanded), or (None, {}) when the
    frame is no `__init__` of a class."""
    local_vars = frame.f_locals
    if frame.f_code.co_name != "__init__" or "__class__" not in local_vars:
        return None, {}
    cls = local_vars["__class__"]
    self_name, var_args, var_kwargs = parse_class_init_keys(cls)
    args = {k: local_vars[k] for k in inspect.signature(cls.__init__).parameters if k in local_vars}
    if var_kwargs:
        args.update(args.get(var_kwargs) or {})
    excluded = {self_name, var_args, var_kwargs, "__class__", "frame", "frame_args"}
    return local_vars.get(self_name), {k: v for k, v in args.items() if k not in excluded}


def get_init_args(frame: types.FrameType) -> Dict[str, Any]:
    """The init arguments of the `__init__` running in `frame` ({} for any other frame)."""
    return _frame_init_args(frame)[1]


def collect_init_args(frame: types.FrameType, path_args: List[Dict[str, Any]], inside: bool = False,
                      classes: Tuple[type, ...] = ()) -> List[Dict[str, Any]]:
    """The init arguments of each `__init__` in the chain of constructor calls that `frame` belongs to, appended to
    `path_args` from the innermost (base class) to the outermost (most derived class) call. With `classes`, only
    the constructors of instances of those classes count."""
    while isinstance(frame, types.FrameType) and isinstance(frame.f_back, types.FrameType):
        self_obj, args = _frame_init_args(frame)
        if "__class__" in frame.f_locals and (not classes or isinstance(self_obj, classes)):
            path_args.append(args)
            inside = True
        elif inside:
            break
        frame = frame.f_back
    return path_args


def save_hyperparameters(obj: Any, *args: Any, ignore: Optional[Union[Sequence[str], str]] = None,
                         frame: Optional[types.FrameType] = None, given_hparams: Optional[Dict[str, Any]] = None
                         ) -> None:
    """`obj.save_hyperparameters(...)` for a LightningModule / LightningDataModule (any object with that method),
    reading the init arguments from `frame` (default: the caller's)."""
    method = getattr(obj, "save_hyperparameters", None)
    if method is None:
        raise TypeError(
            f"save_hyperparameters({type(obj).__name__}): the object has no `save_hyperparameters`; use a"
            " LightningModule or LightningDataModule (fastlight.core.HyperparametersMixin)"
        )
    if given_hparams is not None:
        method(given_hparams, ignore=ignore)
        return
    if frame is None:
        current = inspect.currentframe()
        frame = current.f_back if current is not None else None
    method(*args, ignore=ignore, frame=frame)
