"""grad_norm: the p-norm of each parameter's gradient and of all of them together (Lightning's names and keys)."""
from typing import Dict, Union

import torch
from torch import Tensor, nn


def grad_norm(module: nn.Module, norm_type: Union[float, int, str], group_separator: str = "/") -> Dict[str, Tensor]:
    """`{"grad_{p}_norm{sep}{param name}": norm, ..., "grad_{p}_norm_total": norm of all gradients as one vector}`
    for the parameters of `module` that have a gradient (empty if none has). `norm_type` is a positive number or
    "inf". Typically logged from `on_before_optimizer_step` with `self.log_dict(grad_norm(self, 2))`."""
    try:
        p = float(norm_type)
    except (TypeError, ValueError):
        raise ValueError(f"`norm_type` must be a positive number or 'inf' (infinity norm). Got {norm_type!r}") from None
    if not p > 0:  # also refuses nan
        raise ValueError(f"`norm_type` must be a positive number or 'inf' (infinity norm). Got {p}")
    prefix = f"grad_{p}_norm"
    norms = {
        f"{prefix}{group_separator}{name}": param.grad.detach().norm(p)
        for name, param in module.named_parameters()
        if param.grad is not None
    }
    if norms:
        # the total is the p-norm of the per-parameter p-norms, which equals the norm of all gradients concatenated
        norms[f"{prefix}_total"] = torch.stack(list(norms.values())).norm(p)
    return norms
