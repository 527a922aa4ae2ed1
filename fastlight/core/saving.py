"""hparams.yaml helpers with Lightning's file format: where omegaconf is installed, `OmegaConf.save` (keys in the order
given, config containers resolved), else a plain `yaml.dump` of the dict (keys sorted), as Lightning writes it."""
import copy
import os
from argparse import Namespace
from enum import Enum
from typing import Any, Dict, Optional, Union

from fastlight.utilities._fs import filesystem
from fastlight.utilities.attribute_dict import AttributeDict
from fastlight.utilities.imports import _OMEGACONF_AVAILABLE
from fastlight.utilities.model_helpers import is_overridden
from fastlight.utilities.rank_zero import rank_zero_warn


# fastlight's own top-level checkpoint entries (its version; the exact-resume state, fastlight/trainer/resume_state.py):
# the checkpoint hooks never see them, so they get the dict Lightning would pass
FASTLIGHT_CHECKPOINT_KEYS = ("fastlight_version", "fastlight_resume")


def save_hparams_to_yaml(config_yaml: Union[str, os.PathLike], hparams: Union[dict, Namespace], use_omegaconf: bool = True) -> None:
    """Write `hparams` to `config_yaml` as Lightning does: with omegaconf installed and `use_omegaconf`, through
    `OmegaConf.save` (values omegaconf cannot hold fall back to the plain dump); otherwise a `yaml.dump` of the values
    yaml can represent, the others skipped with a warning."""
    fs = filesystem(config_yaml)  # a local file, or a URL through fsspec
    folder = os.path.dirname(os.fspath(config_yaml))
    if folder and not fs.isdir(folder):
        raise RuntimeError(f"Missing folder: {folder}.")
    if isinstance(hparams, Namespace):
        hparams = vars(hparams)
    elif isinstance(hparams, AttributeDict):
        hparams = dict(hparams)
    if use_omegaconf and _OMEGACONF_AVAILABLE and _save_with_omegaconf(fs, config_yaml, hparams):
        return
    if not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dictionary or Namespace, got {type(hparams).__name__}")

    import yaml  # here, not at import: `import fastlight` stays light

    allowed: Dict[str, Any] = {}
    for key, value in hparams.items():
        value = value.name if isinstance(value, Enum) else value
        try:
            yaml.dump(value)
        except (TypeError, ValueError, yaml.YAMLError):
            rank_zero_warn(f"Skipping '{key}' parameter because it is not possible to safely dump to YAML.")
        else:
            allowed[key] = value
    with fs.open(config_yaml, "w", newline="") as fp:
        yaml.dump(allowed, fp)


def load_hparams_from_yaml(config_yaml: Union[str, os.PathLike], use_omegaconf: bool = True) -> Dict[str, Any]:
    """Read a hparams.yaml written by fastlight or Lightning. A missing file warns and gives {} (Lightning's behaviour).

    Uses `yaml.full_load` like Lightning, so python tags Lightning writes for tuples and the like load back; it does
    not construct arbitrary python objects (`yaml.unsafe_load` would).
    """
    if not os.path.exists(config_yaml):
        rank_zero_warn(f"Missing Tags: {config_yaml}.", category=RuntimeWarning)
        return {}
    import yaml

    with open(config_yaml) as fp:
        try:
            hparams = yaml.full_load(fp)
        except yaml.YAMLError as err:
            raise ValueError(f"{config_yaml} is not valid YAML: {err}") from err
    if use_omegaconf and _OMEGACONF_AVAILABLE:  # Lightning returns a DictConfig then, where omegaconf can hold it
        from omegaconf import OmegaConf
        from omegaconf.errors import UnsupportedValueType, ValidationError

        try:
            return OmegaConf.create(hparams)
        except (UnsupportedValueType, ValidationError):
            pass
    return {} if hparams is None else hparams


def _save_with_omegaconf(fs: Any, config_yaml: Union[str, os.PathLike], hparams: Any) -> bool:
    """`OmegaConf.save` of the hparams with every DictConfig inside resolved to plain containers (on a copy: the
    user's configs stay unresolved). False when omegaconf cannot hold a value (the caller then dumps plainly)."""
    from omegaconf import DictConfig, OmegaConf
    from omegaconf.errors import UnsupportedValueType, ValidationError

    def resolved(value: Any) -> Any:
        if isinstance(value, DictConfig):
            return OmegaConf.to_container(value, resolve=True)
        if isinstance(value, dict):
            return {k: resolved(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
            return type(value)(resolved(v) for v in value)
        return value

    hparams = resolved(copy.deepcopy(hparams))
    try:
        text = OmegaConf.to_yaml(hparams)  # before opening: a refused value leaves no half-written file
    except (UnsupportedValueType, ValidationError):
        return False
    with fs.open(config_yaml, "w", encoding="utf-8") as fp:
        fp.write(text)
    return True


def load_hparams_from_tags_csv(tags_csv: Union[str, os.PathLike]) -> Dict[str, Any]:
    """Lightning's old tags.csv (rows key,value with a header); values parsed as python literals where possible."""
    import ast
    import csv

    if not os.path.isfile(tags_csv):
        rank_zero_warn(f"Missing Tags: {tags_csv}.", category=RuntimeWarning)
        return {}
    with open(tags_csv, newline="") as fp:
        rows = list(csv.reader(fp, delimiter=","))
    out: Dict[str, Any] = {}
    for row in rows[1:]:
        if len(row) < 2:
            continue
        try:
            out[row[0]] = ast.literal_eval(row[1])
        except (ValueError, SyntaxError):
            out[row[0]] = row[1]
    return out


def _init_arg_names(cls: type) -> tuple:
    import inspect

    sig = inspect.signature(cls.__init__)
    params = list(sig.parameters.values())[1:]
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return tuple(p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)), accepts_any


def load_model_state_dict(model: Any, state_dict: Dict[str, Any], strict: bool = True, source: str = "the checkpoint") -> None:
    """model.load_state_dict with an error that lists missing/unexpected keys and shape mismatches together."""
    own = model.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and hasattr(v, "shape") and hasattr(own[k], "shape") and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    if mismatched or (strict and (missing or unexpected)):
        parts = []
        if mismatched:
            parts.append("shape mismatch for " + "; ".join(mismatched))
        if strict and missing:
            parts.append(f"missing keys {missing}")
        if strict and unexpected:
            parts.append(f"unexpected keys {unexpected}")
        hint = " (pass strict=False to ignore missing/unexpected keys)" if strict and (missing or unexpected) and not mismatched else ""
        raise RuntimeError(f"Cannot load the weights of {source} into {type(model).__name__}: {', '.join(parts)}{hint}")
    model.load_state_dict(state_dict, strict=strict)


def load_module_weights(module: Any, checkpoint: Dict[str, Any], strict: Optional[bool] = None, source: str = "the checkpoint") -> bool:
    """Put a checkpoint into a LightningModule in Lightning's order: `on_load_checkpoint(checkpoint)` first (it may
    edit the dict), then the weights, `strict` defaulting to `module.strict_loading`. Returns the `strict` used."""
    hook = getattr(module, "on_load_checkpoint", None)
    if hook is not None:
        hook(checkpoint)
    if "state_dict" not in checkpoint:
        raise KeyError(f"No 'state_dict' in {source}: it is not a model checkpoint (keys: {sorted(checkpoint)})")
    if strict is None:
        strict = getattr(module, "strict_loading", True)
    load_model_state_dict(module, checkpoint["state_dict"], strict=strict, source=source)
    return strict


def _load_from_checkpoint(
    cls: type,
    checkpoint_path: Any,
    map_location: Any = None,
    hparams_file: Any = None,
    strict: Any = None,
    weights_only: Any = None,
    **kwargs: Any,
) -> Any:
    """LightningModule/LightningDataModule.load_from_checkpoint (Lightning's behaviour): the class is built from the
    saved hyperparameters (overridden by `hparams_file`, then by `kwargs`), then a module gets `on_load_checkpoint`
    and its weights (and is moved to the weights' device), a datamodule its state.

    The file is read with fastlight's safe loader: pass weights_only=False only for a trusted file."""
    import torch

    from fastlight.utilities.checkpoint_io import load_checkpoint

    hp_key = getattr(cls, "CHECKPOINT_HYPER_PARAMS_KEY", "hyper_parameters")
    name_key = getattr(cls, "CHECKPOINT_HYPER_PARAMS_NAME", "hparams_name")
    checkpoint = load_checkpoint(checkpoint_path, map_location=map_location, weights_only=weights_only)
    for key in FASTLIGHT_CHECKPOINT_KEYS:  # fastlight's own entries: not for on_load_checkpoint
        checkpoint.pop(key, None)
    if hparams_file is not None:
        ext = os.fspath(hparams_file).rsplit(".", 1)[-1].lower()
        if ext == "csv":
            hparams = load_hparams_from_tags_csv(hparams_file)
        elif ext in ("yml", "yaml"):
            hparams = load_hparams_from_yaml(hparams_file)
        else:
            raise ValueError(f"hparams_file={hparams_file!r}: .csv, .yml or .yaml is required")
        checkpoint[hp_key] = hparams
    checkpoint.setdefault(hp_key, {})
    checkpoint[hp_key] = dict(checkpoint[hp_key])
    checkpoint[hp_key].update(kwargs)

    init_args, accepts_any = _init_arg_names(cls)
    cls_kwargs = dict(checkpoint[hp_key])
    args_name = checkpoint.get(name_key)
    hparams_type = checkpoint.get(getattr(cls, "CHECKPOINT_HYPER_PARAMS_TYPE", "hparams_type"))
    if isinstance(hparams_type, type):  # saved as an omegaconf container: rebuilt as one
        cls_kwargs = hparams_type(cls_kwargs)
    if args_name and args_name in init_args:
        cls_kwargs = {args_name: cls_kwargs}  # __init__(self, conf) with save_hyperparameters(conf)
    if not accepts_any:
        cls_kwargs = {k: v for k, v in cls_kwargs.items() if k in init_args}
    obj = cls(**cls_kwargs)

    if not isinstance(obj, torch.nn.Module):  # a datamodule
        qualname = type(obj).__qualname__
        if qualname in checkpoint and hasattr(obj, "load_state_dict"):
            obj.load_state_dict(checkpoint[qualname])
        return obj

    source = os.fspath(checkpoint_path) if isinstance(checkpoint_path, (str, os.PathLike)) else "the checkpoint"
    own_strict = getattr(obj, "_strict_loading", None)
    if own_strict is not None and strict is not None and strict != own_strict:
        raise ValueError(
            f"You set `.load_from_checkpoint(..., strict={strict!r})` which is in conflict with"
            f" `{cls.__name__}.strict_loading={own_strict!r}. Please set the same value for both of them."
        )
    # the layers configure_model creates must exist before the weights go in (compared with the class that first
    # defines the hook, so a module of another framework's base class works as well)
    base = next((c for c in reversed(type(obj).__mro__) if "configure_model" in vars(c)), None)
    if base is not None and is_overridden("configure_model", obj, parent=base):
        obj.configure_model()
    strict = load_module_weights(obj, checkpoint, strict=strict, source=source)
    state_dict = checkpoint["state_dict"]
    if not strict:
        own = obj.state_dict()
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if missing:
            rank_zero_warn(f"Found keys that are in the model state dict but not in the checkpoint: {missing}")
        if unexpected:
            rank_zero_warn(f"Found keys that are not in the model state dict but in the checkpoint: {unexpected}")
    if not state_dict:
        rank_zero_warn(f"The state dict in {checkpoint_path!r} contains no parameters.")
        return obj
    device = next((t for t in state_dict.values() if isinstance(t, torch.Tensor)), torch.tensor(0)).device
    return obj.to(device)
