"""Pure-torch references of every fused op: the CPU fallback and the test oracle.

Each function has the same signature and result as its native twin in torch.ops.fastlight.
"""
from typing import List

import torch


def grad_stats(tensors: List[torch.Tensor]) -> torch.Tensor:
    """float32 [2]: (sum of squares of all elements, 1.0 if any element is inf or nan)."""
    if len(tensors) == 0:
        return torch.zeros(2, dtype=torch.float32)
    device = tensors[0].device
    acc = torch.float64 if device.type == "cpu" else torch.float32
    sq = torch.zeros((), dtype=acc, device=device)
    bad = torch.zeros((), dtype=torch.bool, device=device)
    for t in tensors:
        if t.numel() == 0:
            continue
        v = t.detach().to(acc)
        sq = sq + (v * v).sum()
        bad = bad | ~torch.isfinite(v).all()
    return torch.stack([sq.to(torch.float32), bad.to(torch.float32)])
