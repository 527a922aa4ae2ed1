"""Lightning's `tuner.batch_size_scaling` is fastlight's batch-size search, fastlight/callbacks/_batch_scaling.py (the
same module object: a name replaced on it, e.g. `is_oom_error` patched in a test, is the one the search calls)."""
import sys

from fastlight.callbacks import _batch_scaling

sys.modules[__name__] = _batch_scaling  # `import fastlight.tuner.batch_size_scaling` gives the search's module
