"""Profilers with Lightning's interface: `Trainer(profiler="simple" | "advanced" | a Profiler)`."""
from fastlight.profilers.advanced import AdvancedProfiler
from fastlight.profilers.profiler import PassThroughProfiler, Profiler
from fastlight.profilers.simple import SimpleProfiler

__all__ = ["AdvancedProfiler", "PassThroughProfiler", "Profiler", "SimpleProfiler"]
