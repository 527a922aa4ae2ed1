"""`lightning.pytorch.callbacks.progress.rich_progress`."""
from fastlight.callbacks.rich_progress import RichProgressBar

__all__ = ["RichProgressBar"]
