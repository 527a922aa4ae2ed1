"""`lightning.pytorch.callbacks.progress.progress_bar`."""
from fastlight.callbacks.progress_bar import ProgressBar, get_standard_metrics

__all__ = ["ProgressBar", "get_standard_metrics"]
