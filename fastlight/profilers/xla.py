"""`lightning.pytorch.profilers.xla`: fastlight does not run on TPUs/XLA."""
from typing import Any

from fastlight.profilers.profiler import Profiler


class XLAProfiler(Profiler):
    """Lightning's TPU profiler, importable so code naming it loads; creating one raises."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise NotImplementedError("XLAProfiler: fastlight does not support TPUs/XLA; use 'simple', 'advanced' or"
                                  " 'pytorch' profilers.")


__all__ = ["XLAProfiler"]
