"""fastlight.callbacks: Lightning-compatible callbacks, one class per file. rich/tqdm load only when a bar is drawn."""
from .callback import Callback
from .checkpoint import Checkpoint
from .early_stopping import EarlyStopping
from .gradient_accumulation_scheduler import GradientAccumulationScheduler
from .lambda_function import LambdaCallback
from .lr_monitor import LearningRateMonitor
from .model_checkpoint import ModelCheckpoint
from .model_summary import ModelSummary
from .on_exception_checkpoint import OnExceptionCheckpoint
from .prediction_writer import BasePredictionWriter
from .progress_bar import ProgressBar
from .rich_progress import RichProgressBar
from .timer import Timer
from .tqdm_progress import TQDMProgressBar

__all__ = [
    "BasePredictionWriter",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichProgressBar",
    "TQDMProgressBar",
    "Timer",
]
