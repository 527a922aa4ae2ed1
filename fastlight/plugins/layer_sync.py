"""`lightning.pytorch.plugins.layer_sync`: synchronizing layers across processes (SyncBatchNorm)."""
from abc import ABC, abstractmethod

import torch
from torch import nn


class LayerSync(ABC):
    """Converts a model's layers to synchronized ones and back."""

    @abstractmethod
    def apply(self, model: nn.Module) -> nn.Module:
        """The model with its layers made to synchronize across processes."""

    @abstractmethod
    def revert(self, model: nn.Module) -> nn.Module:
        """The model with plain layers again."""


class TorchSyncBatchNorm(LayerSync):
    """BatchNorm layers <-> torch.nn.SyncBatchNorm. As a Trainer plugin it means `Trainer(sync_batchnorm=True)`."""

    def apply(self, model: nn.Module) -> nn.Module:
        return nn.SyncBatchNorm.convert_sync_batchnorm(model)

    def revert(self, model: nn.Module) -> nn.Module:
        """SyncBatchNorm layers back to BatchNorm1d/2d/3d, keeping weights, statistics and mode (the input's number
        of dimensions is unknown here, so the dimension comes from the layer a `_bn_kind` attribute recorded, else
        BatchNorm2d)."""
        converted = model
        if isinstance(model, nn.SyncBatchNorm):
            cls = getattr(model, "_bn_kind", nn.BatchNorm2d)
            converted = cls(model.num_features, model.eps, model.momentum, model.affine, model.track_running_stats)
            if model.affine:
                with torch.no_grad():
                    converted.weight = model.weight
                    converted.bias = model.bias
            converted.running_mean = model.running_mean
            converted.running_var = model.running_var
            converted.num_batches_tracked = model.num_batches_tracked
            converted.training = model.training
        for name, child in model.named_children():
            converted.add_module(name, self.revert(child))
        return converted


__all__ = ["LayerSync", "TorchSyncBatchNorm"]
