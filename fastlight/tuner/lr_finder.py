"""Lightning's `tuner.lr_finder` names: the results object `lr_find` returns."""
from fastlight.callbacks._lr_finding import _LRFinder, lr_find as _lr_find

__all__ = ["_LRFinder", "_lr_find"]
