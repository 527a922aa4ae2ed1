"""`lightning.pytorch.strategies.model_parallel`: fastlight has no tensor-parallel (2D) strategy."""
from typing import Any

from fastlight.utilities.exceptions import MisconfigurationException

from .ddp import DDPStrategy


class ModelParallelStrategy(DDPStrategy):
    """Lightning's tensor + data parallel strategy, importable so code naming it loads; creating one raises a
    MisconfigurationException (fastlight shards with FSDPStrategy only)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(
            "ModelParallelStrategy: fastlight has no tensor-parallel strategy; use strategy='fsdp' (FSDPStrategy)"
            " to shard parameters, or 'ddp'."
        )


__all__ = ["ModelParallelStrategy"]
