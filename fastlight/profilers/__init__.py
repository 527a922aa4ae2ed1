"""Profilers with Lightning's interface: `Trainer(profiler="simple" | "advanced" | "pytorch" | a Profiler)`."""
from fastlight.profilers.advanced import AdvancedProfiler
from fastlight.profilers.profiler import PassThroughProfiler, Profiler
from fastlight.profilers.pytorch import PyTorchProfiler
from fastlight.profilers.simple import SimpleProfiler
from fastlight.profilers.xla import XLAProfiler

__all__ = ["AdvancedProfiler", "PassThroughProfiler", "Profiler", "PyTorchProfiler", "SimpleProfiler", "XLAProfiler"]
