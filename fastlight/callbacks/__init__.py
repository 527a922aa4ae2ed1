"""fastlight.callbacks: Lightning-compatible callbacks, one class per file. rich/tqdm load only when a bar is drawn."""
from .backbone_finetuning import BackboneFinetuning
from .batch_size_finder import BatchSizeFinder
from .callback import Callback
from .checkpoint import Checkpoint
from .early_stopping import EarlyStopping
from .ema_weight_averaging import EMAWeightAveraging
from .finetuning import BaseFinetuning
from .gradient_accumulation_scheduler import GradientAccumulationScheduler
from .lambda_function import LambdaCallback
from .lr_finder import LearningRateFinder
from .lr_monitor import LearningRateMonitor
from .model_checkpoint import ModelCheckpoint
from .model_summary import ModelSummary
from .on_exception_checkpoint import OnExceptionCheckpoint
from .prediction_writer import BasePredictionWriter
from .progress_bar import ProgressBar
from .rich_progress import RichProgressBar
from .stochastic_weight_avg import StochasticWeightAveraging
from .timer import Timer
from .tqdm_progress import TQDMProgressBar
from .weight_averaging import WeightAveraging

__all__ = [
    "BackboneFinetuning",
    "BaseFinetuning",
    "BasePredictionWriter",
    "BatchSizeFinder",
    "Callback",
    "Checkpoint",
    "EarlyStopping",
    "EMAWeightAveraging",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateFinder",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichProgressBar",
    "StochasticWeightAveraging",
    "TQDMProgressBar",
    "Timer",
    "WeightAveraging",
]
