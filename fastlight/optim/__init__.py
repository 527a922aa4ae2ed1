"""fastlight.optim: drop-in fused versions of torch.optim.Adam, AdamW and SGD (see fastlight.engine.optim)."""
from ..engine.optim import FusedAdam, FusedAdamW, FusedSGD

__all__ = ["FusedAdam", "FusedAdamW", "FusedSGD"]
