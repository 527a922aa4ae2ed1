"""hparams.yaml helpers with Lightning's file format (plain `yaml.dump` of a dict, keys sorted)."""
import os
import warnings
from argparse import Namespace
from enum import Enum
from typing import Any, Dict, Union

from fastlight.utilities.attribute_dict import AttributeDict
from fastlight.utilities.rank_zero import rank_zero_warn


def save_hparams_to_yaml(config_yaml: Union[str, os.PathLike], hparams: Union[dict, Namespace], use_omegaconf: bool = True) -> None:
    """Write `hparams` to `config_yaml`. Values yaml cannot represent are skipped with a warning, as Lightning does.

    `use_omegaconf` is accepted for Lightning's signature; omegaconf containers are not special-cased here.
    """
    folder = os.path.dirname(os.fspath(config_yaml))
    if folder and not os.path.isdir(folder):
        raise RuntimeError(f"Missing folder: {folder}.")
    if isinstance(hparams, Namespace):
        hparams = vars(hparams)
    elif isinstance(hparams, AttributeDict):
        hparams = dict(hparams)
    if not isinstance(hparams, dict):
        raise TypeError(f"hparams must be a dictionary or Namespace, got {type(hparams).__name__}")

    import yaml  # here, not at import: `import fastlight` stays light

    allowed: Dict[str, Any] = {}
    for key, value in hparams.items():
        value = value.name if isinstance(value, Enum) else value
        try:
            yaml.dump(value)
        except (TypeError, ValueError, yaml.YAMLError):
            warnings.warn(f"Skipping '{key}' parameter because it is not possible to safely dump to YAML.")
        else:
            allowed[key] = value
    with open(config_yaml, "w", newline="") as fp:
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
    return {} if hparams is None else hparams
