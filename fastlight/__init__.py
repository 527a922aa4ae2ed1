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


# Lightning prints its info messages (model summary, "`Trainer.fit` stopped: ...") through its own logger at INFO;
# fastlight's logger does the same unless the application configured logging itself.
_logger = _logging.getLogger(__name__)
_logger.setLevel(_logging.INFO)
if not _logging.getLogger().hasHandlers():
    _logger.addHandler(_StderrHandler())
    _logger.propagate = False

from fastlight import callbacks, core, profilers, utilities  # noqa: E402
from fastlight.callbacks import Callback  # noqa: E402
from fastlight.core import LightningDataModule, LightningModule  # noqa: E402
from fastlight.trainer import Trainer  # noqa: E402
from fastlight.utilities import seed_everything  # noqa: E402


def __getattr__(name: str):
    # optional subpackages owned by other issues: imported on first use, so `import fastlight` stays light
    if name in ("loggers", "strategies", "engine", "ops"):
        import importlib

        try:
            return importlib.import_module(f"fastlight.{name}")
        except ModuleNotFoundError as e:
            if e.name != f"fastlight.{name}":
                raise
            raise AttributeError(f"module 'fastlight' has no attribute '{name}' (fastlight.{name} is not installed)") from None
    raise AttributeError(f"module 'fastlight' has no attribute '{name}'")


__all__ = ["Callback", "LightningDataModule", "LightningModule", "Trainer", "seed_everything",
           "callbacks", "core", "loggers", "utilities"]
