"""`lightning.pytorch.overrides.distributed`: `_IndexBatchSamplerWrapper` is fastlight's IndexRecordingBatchSampler,
the batch sampler every prediction DataLoader runs with (it records the sample indices of each batch)."""
from fastlight.strategies.data import IndexRecordingBatchSampler

_IndexBatchSamplerWrapper = IndexRecordingBatchSampler

__all__ = ["_IndexBatchSamplerWrapper"]
