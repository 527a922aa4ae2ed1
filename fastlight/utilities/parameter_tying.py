"""Tied parameters (one Parameter reachable under several names), `lightning.pytorch.utilities.parameter_tying`."""
from typing import Dict, List

from torch import nn


def find_shared_parameters(module: nn.Module) -> List[List[str]]:
    """Groups of the qualified names that refer to the same Parameter object (each group has two names or more)."""
    by_param: Dict[int, List[str]] = {}
    for name, param in module.named_parameters(remove_duplicate=False):
        by_param.setdefault(id(param), []).append(name)
    return [names for names in by_param.values() if len(names) > 1]


def _owner_and_attr(module: nn.Module, path: str):
    owner_path, _, attr = path.rpartition(".")
    return (module.get_submodule(owner_path) if owner_path else module), attr


def set_shared_parameters(module: nn.Module, shared_params: List[List[str]]) -> nn.Module:
    """Tie again what `find_shared_parameters` found (after something, e.g. moving to a device, untied them): every
    name of a group is set to the Parameter of the group's first name."""
    for group in shared_params:
        first_owner, first_attr = _owner_and_attr(module, group[0])
        param = getattr(first_owner, first_attr)
        for path in group[1:]:
            owner, attr = _owner_and_attr(module, path)
            setattr(owner, attr, param)
    return module


__all__ = ["find_shared_parameters", "set_shared_parameters"]
