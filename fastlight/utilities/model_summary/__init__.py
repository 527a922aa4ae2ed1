"""`lightning.pytorch.utilities.model_summary`: the model summary table."""
from .model_summary import (
    LayerSummary,
    ModelSummary,
    get_formatted_model_size,
    get_human_readable_count,
    parse_batch_shape,
    summarize,
)

__all__ = ["LayerSummary", "ModelSummary", "get_formatted_model_size", "get_human_readable_count", "parse_batch_shape",
           "summarize"]
