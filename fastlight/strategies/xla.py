"""`lightning.pytorch.strategies.xla`: fastlight does not run on TPUs/XLA."""
from typing import Any

from fastlight.utilities.exceptions import MisconfigurationException

from .ddp import DDPStrategy
from .strategy import SingleDeviceStrategy

_MESSAGE = "{}: fastlight does not support TPUs/XLA; use accelerator='cuda' or 'cpu'."


class XLAStrategy(DDPStrategy):
    """Lightning's multi-TPU strategy, importable so code naming it loads; creating one raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(_MESSAGE.format("XLAStrategy"))


class SingleDeviceXLAStrategy(SingleDeviceStrategy):
    """Lightning's single-TPU strategy, importable so code naming it loads; creating one raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(_MESSAGE.format("SingleDeviceXLAStrategy"))


__all__ = ["SingleDeviceXLAStrategy", "XLAStrategy"]
