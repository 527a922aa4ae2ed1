"""fastlight.callbacks: Lightning-compatible callbacks, one class per file (the progress bars in `progress/`, at
Lightning's paths). rich loads only when a rich bar or summary is drawn."""
from .backbone_finetuning import BackboneFinetuning
from .batch_size_finder import BatchSizeFinder
from .callback import Callback
from .checkpoint import Checkpoint
from .device_stats_monitor import DeviceStatsMonitor
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
from .progress import ProgressBar, RichProgressBar, TQDMProgressBar
from .pruning import ModelPruning
from .rich_model_summary import RichModelSummary
from .spike import SpikeDetection
from .stochastic_weight_avg import StochasticWeightAveraging
from .throughput_monitor import ThroughputMonitor
from .timer import Timer
from .weight_averaging import WeightAveraging

__all__ = [
    "BackboneFinetuning",
    "BaseFinetuning",
    "BasePredictionWriter",
    "BatchSizeFinder",
    "Callback",
    "Checkpoint",
    "DeviceStatsMonitor",
    "EarlyStopping",
    "EMAWeightAveraging",
    "GradientAccumulationScheduler",
    "LambdaCallback",
    "LearningRateFinder",
    "LearningRateMonitor",
    "ModelCheckpoint",
    "ModelPruning",
    "ModelSummary",
    "OnExceptionCheckpoint",
    "ProgressBar",
    "RichModelSummary",
    "RichProgressBar",
    "SpikeDetection",
    "StochasticWeightAveraging",
    "TQDMProgressBar",
    "ThroughputMonitor",
    "Timer",
    "WeightAveraging",
]
