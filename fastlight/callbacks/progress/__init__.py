"""`lightning.pytorch.callbacks.progress`: the progress bars (defined in fastlight.callbacks' own files)."""
from fastlight.callbacks.progress_bar import ProgressBar
from fastlight.callbacks.rich_progress import RichProgressBar
from fastlight.callbacks.tqdm_progress import TQDMProgressBar

__all__ = ["ProgressBar", "RichProgressBar", "TQDMProgressBar"]
