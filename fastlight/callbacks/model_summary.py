"""ModelSummary: print a table of the model's layers at fit start (Lightning's layout, without the FLOPs column)."""
from typing import Any

from torch import nn

from fastlight.utilities.model_summary.model_summary import (  # noqa: F401 (re-exported: RichModelSummary, tests)
    _PRECISION_BITS,
    _count,
    format_summary_table,
    get_human_readable_count,
    summarize,
    summary_columns,
)

from .callback import Callback
from fastlight.utilities.rank_zero import module_logger

log = module_logger(__name__)


class ModelSummary(Callback):
    """Log the model summary at fit start on rank 0.

    Args:
        max_depth: nesting depth of the layers listed: 1 direct children, -1 every module, 0 no summary.
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        if not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(f"`max_depth` can be -1, 0 or > 0, got {max_depth}.")
        self._max_depth = max_depth
        self._summarize_kwargs = summarize_kwargs
        self.last_summary: str = ""

    def summary(self, trainer: Any, pl_module: nn.Module) -> str:
        cols = summary_columns(pl_module, self._max_depth)
        return format_summary_table(pl_module, cols, getattr(trainer, "precision", "32-true"))

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._max_depth or not getattr(trainer, "is_global_zero", True):
            return
        self.last_summary = self.summary(trainer, pl_module)
        log.info("\n" + self.last_summary)
