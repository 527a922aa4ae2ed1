"""fastlight.plugins: Lightning's plugin classes (`lightning.pytorch.plugins`): precision plugins, checkpoint I/O,
layer sync and (in .environments) cluster environments. `Trainer(plugins=[...])` takes a precision plugin, a
CheckpointIO and TorchSyncBatchNorm."""
from .io import AsyncCheckpointIO, CheckpointIO, TorchCheckpointIO
from .layer_sync import LayerSync, TorchSyncBatchNorm
from .precision import (
    BitsandbytesPrecision,
    DeepSpeedPrecision,
    DoublePrecision,
    FSDPPrecision,
    HalfPrecision,
    MixedPrecision,
    Precision,
    TransformerEnginePrecision,
    XLAPrecision,
)

__all__ = [
    "AsyncCheckpointIO",
    "BitsandbytesPrecision",
    "CheckpointIO",
    "DeepSpeedPrecision",
    "DoublePrecision",
    "FSDPPrecision",
    "HalfPrecision",
    "LayerSync",
    "MixedPrecision",
    "Precision",
    "TorchCheckpointIO",
    "TorchSyncBatchNorm",
    "TransformerEnginePrecision",
    "XLAPrecision",
]
