"""Attribute lookup across a LightningModule, its hparams and the trainer's datamodule (Lightning's
`lightning_hasattr` / `lightning_getattr` / `lightning_setattr`), used by the tuner to read and write `lr` and
`batch_size`."""
from typing import Any, List


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
