"""Exceptions with Lightning's names (`lightning.pytorch.utilities.exceptions`).

fastlight's own configuration errors (trainer.config.ConfigError, the optimizer-config and logging errors ...)
subclass MisconfigurationException, so `except MisconfigurationException:` in user code catches what it caught
under Lightning; those that were ValueErrors stay ValueErrors too.
"""


class MisconfigurationException(Exception):
    """A configuration (Trainer flag, hook return value, callback argument ...) fastlight cannot run with."""


class _MisconfigurationValueError(MisconfigurationException, ValueError):
    """A bad argument value: a MisconfigurationException as in Lightning, and the ValueError fastlight raised before."""


class _TunerExitException(Exception):
    """Raised by a tuner callback run through `Tuner`: the Trainer ends the current fit/validate/test/predict
    cleanly (teardown hooks, status "finished") instead of going on to train."""


class SIGTERMException(SystemExit):
    """Raised by the fit loop at a batch boundary after a SIGTERM (Lightning's name): it ends the run with exit
    status 0 once the callbacks' `on_exception` (e.g. OnExceptionCheckpoint) and the teardown have run."""


__all__ = ["MisconfigurationException", "SIGTERMException"]
