"""fastlight: PyTorch Lightning's API, fused hot paths. `import fastlight as pl`."""
__version__ = "0.1.0"

import logging as _logging  # noqa: E402
import sys as _sys  # noqa: E402


class _StderrHandler(_logging.StreamHandler):
    """Writes to whatever sys.stderr is at the time (redirections and test captures included)."""

    @property  # type: ignore[override]
    def stream(self):
        return _sys.stderr

    @stream.setter
    def stream(self, value):
        pass


# Lightning prints its info messages (model summary, "`Trainer.fit` stopped: ...") through the `lightning.pytorch`
# logger at INFO, on stderr unless the application configured logging itself. fastlight's messages go to the same
# loggers (utilities/rank_zero.py), so `logging.getLogger("lightning.pytorch").setLevel(...)` works as documented for
# Lightning. The handler sits on the parent, `lightning`: should the real `lightning.pytorch` be imported as well
# (`from lightning.fabric import ...` does), it adds its own handler below it and no line is printed twice.
_logging.getLogger("lightning.pytorch").setLevel(_logging.INFO)
if not _logging.getLogger().hasHandlers():
    _parent = _logging.getLogger("lightning")
    if not any(isinstance(h, _StderrHandler) for h in _parent.handlers):
        _parent.addHandler(_StderrHandler())
    _parent.propagate = False

from fastlight import callbacks, core, profilers, utilities  # noqa: E402
from fastlight.callbacks import Callback  # noqa: E402
from fastlight.core import LightningDataModule, LightningModule  # noqa: E402
from fastlight.trainer import Trainer  # noqa: E402
from fastlight.utilities import seed_everything  # noqa: E402


from fastlight.utilities.warnings import disable_possible_user_warnings  # noqa: E402

if __import__("os").environ.get("POSSIBLE_USER_WARNINGS", "").lower() in ("0", "off"):  # as Lightning reads it
    disable_possible_user_warnings()

# fastlight's own banner (the name Lightning's CLI tools call, with fastlight's picture)
LIGHTNING_LOGO: str = r"""
        ________
       /       /
      /   ____/
     /   /__
    /     _/     f a s t l i g h t
   /__   /
     /  /
    / ,'
   /,'
"""


def cli_lightning_logo() -> None:
    """Print the banner (Lightning's scripts call this at start-up)."""
    print()
    print("\033[0;35m" + LIGHTNING_LOGO + "\033[0m")
    print()


def alias() -> None:
    """Make `pytorch_lightning`, `lightning.pytorch` and `import lightning as L`'s PyTorch names resolve to fastlight
    (an import hook; see fastlight/_alias.py). For notebooks: call it before anything imports Lightning. Scripts:
    `python -m fastlight run train.py ARGS` does this, then runs the script."""
    from fastlight._alias import alias as _install

    _install()


def __getattr__(name: str):
    # subpackages imported on first use, so `import fastlight` stays light (`pl.accelerators`, `pl.plugins` ...)
    if name in ("loggers", "strategies", "engine", "ops", "accelerators", "plugins", "tuner", "trainer", "cli",
                "demos", "optim"):
        import importlib

        try:
            return importlib.import_module(f"fastlight.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fastlight.{name}":
                raise
            raise AttributeError(f"module 'fastlight' has no attribute '{name}' (fastlight.{name} is not installed)") from None
    raise AttributeError(f"module 'fastlight' has no attribute '{name}'")


__all__ = ["Callback", "LightningDataModule", "LightningModule", "Trainer", "seed_everything",
           "callbacks", "core", "loggers", "utilities", "alias", "cli_lightning_logo"]
