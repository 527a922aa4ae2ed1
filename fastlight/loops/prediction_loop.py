"""Lightning's `loops.prediction_loop` is fastlight's evaluation module, fastlight/trainer/evaluation.py (the same module
object: a name set on it, e.g. `_RICH_AVAILABLE` for the results table, is the one the loops read)."""
import sys

from fastlight.trainer import evaluation

sys.modules[__name__] = evaluation  # `import fastlight.loops.prediction_loop` gives the evaluation module
