"""Pure-torch references of every fused op: the CPU fallback and the test oracle.

Each function has the same signature and result as its native twin in torch.ops.fastlight.
"""
from typing import List, Optional

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


def _scalar(t: Optional[torch.Tensor]) -> Optional[float]:
    # The reference reads per-step scalars on the host (a sync on CUDA): it is the fallback, not the fast path.
    return None if t is None else float(t.item())


def _compute_dtype(t: torch.Tensor) -> torch.dtype:
    return torch.float64 if t.dtype == torch.float64 else torch.float32


def adam_step_(
    params: List[torch.Tensor],
    grads: List[torch.Tensor],
    exp_avgs: List[torch.Tensor],
    exp_avg_sqs: List[torch.Tensor],
    max_exp_avg_sqs: List[torch.Tensor],
    state_steps: List[torch.Tensor],
    lr: torch.Tensor,
    beta1: float,
    beta2: float,
    weight_decay: float,
    eps: float,
    amsgrad: bool,
    maximize: bool,
    decoupled_weight_decay: bool,
    grad_scale: Optional[torch.Tensor] = None,
    found_inf: Optional[torch.Tensor] = None,
) -> None:
    """Adam/AdamW in place, torch's single-tensor order of operations in float32 (float64 for float64 params).

    Every state_steps[i] += 1. grad_scale multiplies the gradients (grads are not written); a nonzero
    found_inf leaves params, states and steps untouched.
    """
    if found_inf is not None and _scalar(found_inf) != 0.0:
        return
    lr_v = _scalar(lr)
    scale = _scalar(grad_scale)
    with torch.no_grad():
        for i, p in enumerate(params):
            cd = _compute_dtype(p)
            step_t = state_steps[i]
            step_t += 1
            step = float(step_t.item())
            g = grads[i].to(cd)
            if scale is not None:
                g = g * scale
            if maximize:
                g = -g
            pv = p.to(cd)
            m = exp_avgs[i].to(cd)
            v = exp_avg_sqs[i].to(cd)
            if weight_decay != 0:
                if decoupled_weight_decay:
                    pv = pv * (1 - lr_v * weight_decay)
                else:
                    g = g + weight_decay * pv
            m = torch.lerp(m, g, 1 - beta1)
            v = v * beta2
            v = v + ((1 - beta2) * g) * g
            bias_correction1 = 1 - beta1**step
            bias_correction2 = 1 - beta2**step
            step_size = lr_v / bias_correction1
            bias_correction2_sqrt = bias_correction2**0.5
            vd = v
            if amsgrad:
                vd = torch.maximum(max_exp_avg_sqs[i].to(cd), v)
                max_exp_avg_sqs[i].copy_(vd)
            denom = vd.sqrt() / bias_correction2_sqrt + eps
            pv = pv + ((-step_size) * m) / denom
            exp_avgs[i].copy_(m)
            exp_avg_sqs[i].copy_(v)
            p.copy_(pv)


def sgd_step_(
    params: List[torch.Tensor],
    grads: List[torch.Tensor],
    momentum_buffers: List[torch.Tensor],
    lr: torch.Tensor,
    weight_decay: float,
    momentum: float,
    dampening: float,
    nesterov: bool,
    maximize: bool,
    is_first_step: bool,
    grad_scale: Optional[torch.Tensor] = None,
    found_inf: Optional[torch.Tensor] = None,
) -> None:
    """torch.optim.SGD in place (float32 math for 16-bit params); is_first_step: buffer := gradient."""
    if found_inf is not None and _scalar(found_inf) != 0.0:
        return
    lr_v = _scalar(lr)
    scale = _scalar(grad_scale)
    with torch.no_grad():
        for i, p in enumerate(params):
            cd = _compute_dtype(p)
            g = grads[i].to(cd)
            if scale is not None:
                g = g * scale
            if maximize:
                g = -g
            pv = p.to(cd)
            if weight_decay != 0:
                g = g + weight_decay * pv
            if momentum != 0:
                if is_first_step:
                    buf = g
                else:
                    buf = momentum_buffers[i].to(cd) * momentum + (1 - dampening) * g
                momentum_buffers[i].copy_(buf)
                g = g + momentum * buf if nesterov else buf
            p.copy_(pv + (-lr_v) * g)
