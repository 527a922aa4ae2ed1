"""fastlight.strategies: how a run spreads over devices and processes (single device, DDP).

The Trainer's entry point is `resolve_strategy(strategy, accelerator, devices, num_nodes)`; see
strategy.py's module docstring for the calls the loop makes and docs/distributed.md for users.
"""
from .data import DistributedSamplerWrapper, UnrepeatedDistributedSampler, process_dataloader, set_sampler_epoch
from .ddp import DDPStrategy
from .fsdp import FSDPStrategy
from .environments import (
    ClusterEnvironment,
    LocalEnvironment,
    SLURMEnvironment,
    TorchrunEnvironment,
    detect_environment,
    find_free_port,
)
from .launchers import MultiProcessingLauncher, SubprocessScriptLauncher
from .registry import STRATEGY_NAMES, StrategyRegistry, resolve_strategy
from .strategy import ParallelStrategy, SingleDeviceStrategy, Strategy
from .deepspeed import DeepSpeedStrategy
from .model_parallel import ModelParallelStrategy
from .xla import SingleDeviceXLAStrategy, XLAStrategy

__all__ = [
    "ClusterEnvironment",
    "DDPStrategy",
    "DeepSpeedStrategy",
    "DistributedSamplerWrapper",
    "FSDPStrategy",
    "LocalEnvironment",
    "ModelParallelStrategy",
    "MultiProcessingLauncher",
    "ParallelStrategy",
    "SLURMEnvironment",
    "STRATEGY_NAMES",
    "SingleDeviceStrategy",
    "SingleDeviceXLAStrategy",
    "Strategy",
    "StrategyRegistry",
    "SubprocessScriptLauncher",
    "TorchrunEnvironment",
    "UnrepeatedDistributedSampler",
    "XLAStrategy",
    "detect_environment",
    "find_free_port",
    "process_dataloader",
    "resolve_strategy",
    "set_sampler_epoch",
]
