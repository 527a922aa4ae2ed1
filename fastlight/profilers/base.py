"""`lightning.pytorch.profilers.base`."""
from fastlight.profilers.profiler import PassThroughProfiler

__all__ = ["PassThroughProfiler"]
