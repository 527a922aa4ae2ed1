"""`lightning.pytorch.callbacks.progress.tqdm_progress`."""
from fastlight.callbacks.progress_bar import convert_inf
from fastlight.callbacks.tqdm_progress import TQDMProgressBar

__all__ = ["TQDMProgressBar", "convert_inf"]
