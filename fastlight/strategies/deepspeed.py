"""`lightning.pytorch.strategies.deepspeed`: fastlight has no DeepSpeed integration.

`_DEEPSPEED_AVAILABLE` says whether the deepspeed package is installed (projects read it to decide what to
configure); `DeepSpeedStrategy(...)` and `Trainer(strategy="deepspeed...")` raise an error that says so, and what to
use instead.
"""
from typing import Any

from fastlight.utilities.exceptions import MisconfigurationException
from fastlight.utilities.imports import RequirementCache

from .ddp import DDPStrategy

_DEEPSPEED_AVAILABLE = RequirementCache("deepspeed")
_DEEPSPEED_GREATER_EQUAL_0_14_1 = RequirementCache("deepspeed>=0.14.1")

# the strategy names Lightning registers for DeepSpeed
DEEPSPEED_NAMES = ("deepspeed", "deepspeed_stage_1", "deepspeed_stage_1_offload", "deepspeed_stage_2",
                   "deepspeed_stage_2_offload", "deepspeed_stage_3", "deepspeed_stage_3_offload",
                   "deepspeed_stage_3_offload_nvme")


def deepspeed_unsupported(what: str) -> MisconfigurationException:
    """The error for any use of DeepSpeed: whether the package is missing, and that fastlight does not run it."""
    if not _DEEPSPEED_AVAILABLE:
        reason = "the `deepspeed` package is not installed, and fastlight has no DeepSpeed integration anyway"
    else:
        reason = "fastlight has no DeepSpeed integration (the installed `deepspeed` package is not used)"
    return MisconfigurationException(
        f"{what}: {reason}. Use strategy='fsdp' (sharded parameters, gradients and optimizer state) or 'ddp'."
    )


class DeepSpeedStrategy(DDPStrategy):
    """Lightning's DeepSpeed strategy, importable so that code naming it loads; creating one raises a
    MisconfigurationException saying fastlight has no DeepSpeed integration (and whether deepspeed is installed)."""

    strategy_name = "deepspeed"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise deepspeed_unsupported("DeepSpeedStrategy(...)")


__all__ = ["DeepSpeedStrategy"]
