"""`lightning.pytorch.overrides.distributed`: the samplers distributed runs use. `UnrepeatedDistributedSampler`
(evaluation and prediction: each sample once over all ranks, ranks may get one batch less) and its wrapper for a
custom sampler are fastlight.strategies.data's; `_IndexBatchSamplerWrapper` is fastlight's IndexRecordingBatchSampler,
the batch sampler every prediction DataLoader runs with (it records the sample indices of each batch)."""
from fastlight.strategies.data import (
    IndexRecordingBatchSampler,
    UnrepeatedDistributedSampler,
    UnrepeatedDistributedSamplerWrapper,
)

_IndexBatchSamplerWrapper = IndexRecordingBatchSampler

__all__ = ["UnrepeatedDistributedSampler", "UnrepeatedDistributedSamplerWrapper", "_IndexBatchSamplerWrapper"]
