"""`lightning.pytorch.plugins.precision`: precision plugins, passed as `Trainer(plugins=[...])` instead of the
`precision=` flag. Precision and MixedPrecision are the Trainer's own classes (fastlight/trainer/precision.py);
DoublePrecision and HalfPrecision are its true-dtype precision under Lightning's names. The plugins of features
fastlight does not have (DeepSpeed, XLA, Transformer Engine, bitsandbytes, FSDP's own precision class) raise a
MisconfigurationException naming what to use instead."""
from typing import Any

from fastlight.trainer.precision import MixedPrecision, Precision, TruePrecision
from fastlight.utilities.exceptions import MisconfigurationException


class DoublePrecision(TruePrecision):
    """precision="64-true": module and floating inputs in float64."""

    def __init__(self) -> None:
        super().__init__("64-true")


class HalfPrecision(TruePrecision):
    """precision="16-true" or "bf16-true": module and floating inputs in float16 / bfloat16."""

    def __init__(self, precision: str = "16-true") -> None:
        if precision not in ("16-true", "bf16-true"):
            raise ValueError(f"HalfPrecision(precision={precision!r}): must be '16-true' or 'bf16-true'.")
        super().__init__(precision)


def _unsupported(name: str, instead: str) -> type:
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        raise MisconfigurationException(f"{name}: fastlight does not have this precision plugin; {instead}")

    doc = f"Lightning's {name}, importable so code naming it loads; creating one raises ({instead})."
    return type(name, (Precision,), {"__init__": __init__, "__doc__": doc, "__module__": __name__})


FSDPPrecision = _unsupported(
    "FSDPPrecision", "with strategy='fsdp' pass Trainer(precision='bf16-mixed' / '16-mixed' / ...) instead")
DeepSpeedPrecision = _unsupported("DeepSpeedPrecision", "fastlight has no DeepSpeed integration")
XLAPrecision = _unsupported("XLAPrecision", "fastlight does not support TPUs/XLA")
TransformerEnginePrecision = _unsupported(
    "TransformerEnginePrecision", "use Trainer(precision='bf16-mixed') for reduced precision on GPUs")
BitsandbytesPrecision = _unsupported(
    "BitsandbytesPrecision", "quantize the model with bitsandbytes yourself in configure_model")

__all__ = [
    "BitsandbytesPrecision",
    "DeepSpeedPrecision",
    "DoublePrecision",
    "FSDPPrecision",
    "HalfPrecision",
    "MixedPrecision",
    "Precision",
    "TransformerEnginePrecision",
    "XLAPrecision",
]
