"""move_data_to_device: Lightning's batch transfer (also the default `transfer_batch_to_device` of every module)."""
import copy
import dataclasses
from collections import OrderedDict, defaultdict
from typing import Any, Mapping, Sequence, Union

import torch
from torch import Tensor

# Transfers to these devices are never issued non-blocking (MPS: a race in torch, pytorch/pytorch#83015).
_BLOCKING_DEVICE_TYPES = ("cpu", "mps")


def move_data_to_device(batch: Any, device: Union[torch.device, str, int]) -> Any:
    """`batch` with every object that has a `.to(device)` method (tensors, modules, user types) moved to `device`,
    walking into dicts, lists, tuples, namedtuples and dataclasses; everything else is returned as is."""
    if isinstance(device, str):
        device = torch.device(device)
    non_blocking = isinstance(device, torch.device) and device.type not in _BLOCKING_DEVICE_TYPES
    return _move(batch, device, non_blocking)


def _move(data: Any, device: Any, non_blocking: bool) -> Any:
    cls = data.__class__
    if cls is Tensor or isinstance(data, Tensor):  # the common case first
        return data.to(device, non_blocking=True) if non_blocking else data.to(device)
    if cls is list:
        return [_move(d, device, non_blocking) for d in data]
    if cls is dict:
        return {k: _move(v, device, non_blocking) for k, v in data.items()}
    if callable(getattr(cls, "to", None)):
        moved = data.to(device)
        return data if moved is None else moved  # a user `.to` that moves in place and forgets `return self`
    if dataclasses.is_dataclass(data) and not isinstance(data, type):
        return _move_dataclass(data, device, non_blocking)
    if isinstance(data, Mapping):
        items = [(k, _move(v, device, non_blocking)) for k, v in data.items()]
        if isinstance(data, defaultdict):
            return cls(data.default_factory, OrderedDict(items))
        return cls(OrderedDict(items)) if isinstance(data, OrderedDict) else cls(items)
    if isinstance(data, Sequence) and not isinstance(data, (str, bytes)):
        moved = [_move(d, device, non_blocking) for d in data]
        if isinstance(data, tuple) and hasattr(data, "_fields"):  # namedtuple
            return cls(*moved)
        return cls(moved)
    return data


def _move_dataclass(data: Any, device: Any, non_blocking: bool) -> Any:
    fields = [(f.name, getattr(data, f.name)) for f in dataclasses.fields(data) if f.init]
    # copy everything but the fields that are about to be replaced
    result = copy.deepcopy(data, memo={id(value): value for _, value in fields})
    for name, value in fields:
        try:
            setattr(result, name, _move(value, device, non_blocking))
        except dataclasses.FrozenInstanceError as err:
            raise ValueError(
                f"cannot move the frozen dataclass {type(data).__name__} to a device: its field {name!r} cannot be"
                " set; make it a regular dataclass or give it a `to(device)` method"
            ) from err
    return result
