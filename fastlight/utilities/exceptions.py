"""Exceptions with Lightning's names (`lightning.pytorch.utilities.exceptions`).

fastlight's own configuration errors (trainer.config.ConfigError, the optimizer-config and logging errors ...)
subclass MisconfigurationException, so `except MisconfigurationException:` in user code catches what it caught
under Lightning; those that were ValueErrors stay ValueErrors too.
"""


class MisconfigurationException(Exception):
    """A configuration (Trainer flag, hook return value, callback argument ...) fastlight cannot run with."""


class _MisconfigurationValueError(MisconfigurationException, ValueError):
    """A bad argument value: a MisconfigurationException as in Lightning, and the ValueError fastlight raised before."""


class SIGTERMException(SystemExit):
    """Raised in the training process when it received SIGTERM (a scheduler preempting the job): the loop stops at
    the next step, callbacks' `on_exception` hooks see this exception (e.g. OnExceptionCheckpoint saves)."""


class _TunerExitException(Exception):
    """Raised by a tuner callback run through `Tuner`: the Trainer ends the current fit/validate/test/predict
    cleanly (teardown hooks, status "finished") instead of going on to train."""


__all__ = ["MisconfigurationException", "SIGTERMException"]
