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
from .registry import STRATEGY_NAMES, resolve_strategy
from .strategy import SingleDeviceStrategy, Strategy

__all__ = [
    "ClusterEnvironment",
    "DDPStrategy",
    "DistributedSamplerWrapper",
    "FSDPStrategy",
    "LocalEnvironment",
    "MultiProcessingLauncher",
    "SLURMEnvironment",
    "STRATEGY_NAMES",
    "SingleDeviceStrategy",
    "Strategy",
    "SubprocessScriptLauncher",
    "TorchrunEnvironment",
    "UnrepeatedDistributedSampler",
    "detect_environment",
    "find_free_port",
    "process_dataloader",
    "resolve_strategy",
    "set_sampler_epoch",
]
