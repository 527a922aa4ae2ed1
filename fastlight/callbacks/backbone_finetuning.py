"""BackboneFinetuning: the module's `backbone` is frozen, unfrozen at a given epoch into its own param group with a
small LR, and that LR then grows by `lambda_func` each epoch (Lightning 2.6's callback)."""
from typing import Any, Callable, Dict, Optional

import torch
from torch.nn import Module

from .finetuning import BaseFinetuning
from fastlight.utilities.rank_zero import module_logger

log = module_logger(__name__)


def multiplicative(epoch: int) -> float:
    """The default growth: the backbone LR doubles every epoch."""
    return 2.0


class BackboneFinetuning(BaseFinetuning):
    """Fine-tune `pl_module.backbone` on an LR schedule of its own.

    Args:
        unfreeze_backbone_at_epoch: the epoch at which the backbone is unfrozen.
        lambda_func: `lambda_func(epoch + 1)` multiplies the backbone LR at each later epoch start.
        backbone_initial_ratio_lr: the backbone's first LR as a fraction of the current LR (first param group).
        backbone_initial_lr: the backbone's first LR (overrides the ratio).
        should_align: once the backbone LR would pass the current LR, use the current LR.
        initial_denom_lr: passed to `unfreeze_and_add_param_group`.
        train_bn: whether the backbone's BatchNorm layers train while it is frozen and after.
        verbose: log both LRs at each change; rounding: digits shown.
    """

    def __init__(self, unfreeze_backbone_at_epoch: int = 10, lambda_func: Callable = multiplicative,
                 backbone_initial_ratio_lr: float = 10e-2, backbone_initial_lr: Optional[float] = None,
                 should_align: bool = True, initial_denom_lr: float = 10.0, train_bn: bool = True,
                 verbose: bool = False, rounding: int = 12) -> None:
        super().__init__()
        if not callable(lambda_func):
            raise TypeError(f"`lambda_func` must be callable (epoch -> LR factor), got {lambda_func!r}")
        self.unfreeze_backbone_at_epoch = unfreeze_backbone_at_epoch
        self.lambda_func = lambda_func
        self.backbone_initial_ratio_lr = backbone_initial_ratio_lr
        self.backbone_initial_lr = backbone_initial_lr
        self.should_align = should_align
        self.initial_denom_lr = initial_denom_lr
        self.train_bn = train_bn
        self.verbose = verbose
        self.rounding = rounding
        self.previous_backbone_lr: Optional[float] = None

    def state_dict(self) -> Dict[str, Any]:
        return {"internal_optimizer_metadata": self._internal_optimizer_metadata,
                "previous_backbone_lr": self.previous_backbone_lr}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self.previous_backbone_lr = state_dict["previous_backbone_lr"]
        super().load_state_dict(state_dict)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not isinstance(getattr(pl_module, "backbone", None), Module):
            raise ValueError("The LightningModule should have a nn.Module `backbone` attribute")
        super().on_fit_start(trainer, pl_module)

    def freeze_before_training(self, pl_module: Any) -> None:
        self.freeze(pl_module.backbone)

    def finetune_function(self, pl_module: Any, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        if epoch < self.unfreeze_backbone_at_epoch:
            return
        current_lr = optimizer.param_groups[0]["lr"]
        if epoch == self.unfreeze_backbone_at_epoch:
            backbone_lr = self.backbone_initial_lr if self.backbone_initial_lr is not None \
                else current_lr * self.backbone_initial_ratio_lr
            self.unfreeze_and_add_param_group(pl_module.backbone, optimizer, backbone_lr, train_bn=self.train_bn,
                                              initial_denom_lr=self.initial_denom_lr)
        else:
            backbone_lr = self.lambda_func(epoch + 1) * self.previous_backbone_lr
            if self.should_align and backbone_lr > current_lr:
                backbone_lr = current_lr
            optimizer.param_groups[-1]["lr"] = backbone_lr
        self.previous_backbone_lr = backbone_lr
        if self.verbose:
            log.info(f"Current lr: {round(current_lr, self.rounding)},"
                     f" Backbone lr: {round(backbone_lr, self.rounding)}")
