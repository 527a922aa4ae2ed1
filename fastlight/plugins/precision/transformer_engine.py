"""`lightning.pytorch.plugins.precision.transformer_engine`."""
from fastlight.plugins.precision import TransformerEnginePrecision

__all__ = ["TransformerEnginePrecision"]
