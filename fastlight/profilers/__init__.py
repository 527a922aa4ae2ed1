"""Profilers with Lightning's interface: `Trainer(profiler="simple" | "advanced" | "pytorch" | a Profiler)`."""
from fastlight.profilers.advanced import AdvancedProfiler
from fastlight.profilers.profiler import PassThroughProfiler, Profiler
from fastlight.profilers.pytorch import PyTorchProfiler
from fastlight.profilers.simple import SimpleProfiler

__all__ = ["AdvancedProfiler", "PassThroughProfiler", "Profiler", "PyTorchProfiler", "SimpleProfiler"]
