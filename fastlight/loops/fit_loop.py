"""Lightning's `loops.fit_loop` is fastlight's fit loop module, fastlight/trainer/fit_loop.py (the same module object:
a name replaced on it, e.g. `_request_dataloader` wrapped to count the requests, is the one the loop calls)."""
import sys

from fastlight.trainer import fit_loop

sys.modules[__name__] = fit_loop  # `import fastlight.loops.fit_loop` gives the fit loop module
