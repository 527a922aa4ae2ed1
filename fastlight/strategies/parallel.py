"""`lightning.pytorch.strategies.parallel`: ParallelStrategy, the base of the multi-process strategies."""
from .strategy import ParallelStrategy

__all__ = ["ParallelStrategy"]
