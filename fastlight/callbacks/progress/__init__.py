"""`lightning.pytorch.callbacks.progress`: the progress bars, at Lightning's module paths (its tests and users patch
names such as `tqdm_progress.Tqdm` there)."""
from fastlight.callbacks.progress.progress_bar import ProgressBar
from fastlight.callbacks.progress.rich_progress import RichProgressBar
from fastlight.callbacks.progress.tqdm_progress import TQDMProgressBar

__all__ = ["ProgressBar", "RichProgressBar", "TQDMProgressBar"]
