"""`is_overridden`: whether a user's LightningModule / LightningDataModule / Callback replaces one of the library's
methods (`lightning.pytorch.utilities.model_helpers`)."""
import sys
from functools import partial
from typing import Any, Dict, Optional
from unittest.mock import Mock

from torch import nn
from fastlight.utilities.rank_zero import module_logger

# (module that defines the class, class name): the default parents, looked up among the loaded modules (an instance
# of one of them exists only if its module was imported, so nothing is imported here)
_DEFAULT_PARENTS = (
    ("fastlight.core.module", "LightningModule"),
    ("fastlight.core.datamodule", "LightningDataModule"),
    ("fastlight.callbacks.callback", "Callback"),
)


_log = module_logger(__name__)


def _default_parent(instance: object) -> Optional[type]:
    for module_name, cls_name in _DEFAULT_PARENTS:
        cls = getattr(sys.modules.get(module_name), cls_name, None)
        if cls is not None and isinstance(instance, cls):
            return cls
    return None


def _code_of(fn: Any) -> Any:
    fn = getattr(fn, "__func__", fn)  # bound method -> function
    while hasattr(fn, "__wrapped__") and not isinstance(fn, Mock):  # functools.wraps / contextmanager wrappers
        fn = fn.__wrapped__
    return getattr(fn, "__code__", fn)


def is_overridden(method_name: str, instance: Optional[object] = None, parent: Optional[type] = None) -> bool:
    """True when `instance`'s `method_name` is not `parent`'s (by default the fastlight base class the instance
    derives from: LightningModule, LightningDataModule or Callback). None as instance: False."""
    if instance is None:
        return False
    if parent is None:
        parent = _default_parent(instance)
        if parent is None:
            raise ValueError(
                f"is_overridden({method_name!r}, {type(instance).__name__} instance): pass `parent=`, the class to"
                " compare with (the instance is not a fastlight LightningModule, LightningDataModule or Callback;"
                " mixing pytorch_lightning and fastlight classes in one program is a common cause)"
            )
    instance_attr = getattr(instance, method_name, None)
    if instance_attr is None:
        return False
    if hasattr(instance_attr, "__wrapped__"):  # functools.wraps / update_wrapper: what it wraps counts
        instance_attr = instance_attr.__wrapped__
    if isinstance(instance_attr, Mock):  # a test double: what it wraps counts (a bare Mock overrides nothing)
        instance_attr = instance_attr._mock_wraps
    elif isinstance(instance_attr, partial):
        instance_attr = instance_attr.func
    if instance_attr is None:
        return False
    parent_attr = getattr(parent, method_name, None)
    if parent_attr is None:
        raise ValueError(f"is_overridden: {parent.__name__} has no method {method_name!r} to compare with")
    return _code_of(instance_attr) is not _code_of(parent_attr)


class _ModuleMode:
    """The train/eval mode of every submodule, captured once and put back later (e.g. around a sanity check)."""

    def __init__(self) -> None:
        self.mode: Dict[str, bool] = {}

    def capture(self, module: nn.Module) -> None:
        self.mode = {name: m.training for name, m in module.named_modules()}

    def restore(self, module: nn.Module) -> None:
        for name, m in module.named_modules():
            if name not in self.mode:
                _log.debug(f"Restoring training mode on module '{name}' not possible, it was never captured."
                           " Is your module structure changing?")
                continue
            m.training = self.mode[name]


class _restricted_classmethod_impl(classmethod):  # noqa: N801 (Lightning's name)
    """A classmethod that raises when called through an instance: `model.load_from_checkpoint(path)` would build a
    new model and drop it, leaving `model` unchanged, a common mistake. Looking the method up (inspect) is fine."""

    def __get__(self, instance: Any, cls: Optional[type] = None) -> Any:  # type: ignore[override]
        if instance is None:
            return super().__get__(instance, cls)
        owner = type(instance).__name__
        name = self.__func__.__name__

        def refuse(*args: Any, **kwargs: Any) -> Any:
            raise TypeError(
                f"The classmethod `{owner}.{name}` cannot be called on an instance. Please call it on the class type"
                " and make sure the return value is used."
            )

        return refuse


_restricted_classmethod = _restricted_classmethod_impl


def get_torchvision_model(model_name: str, **kwargs: Any) -> nn.Module:
    """A torchvision model by name (`torchvision.models.get_model`)."""
    try:
        from torchvision import models
    except ImportError as e:
        raise ModuleNotFoundError(f"get_torchvision_model({model_name!r}) needs torchvision: pip install torchvision") from e
    return models.get_model(model_name, **kwargs)


__all__ = ["get_torchvision_model", "is_overridden"]
