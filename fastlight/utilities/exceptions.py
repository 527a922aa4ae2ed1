"""Exceptions with Lightning's names (`pytorch_lightning.utilities.exceptions`)."""


class MisconfigurationException(Exception):
    """A configuration the tuner (or another feature) cannot run with."""


class _TunerExitException(Exception):
    """Raised by a tuner callback run through `Tuner`: the Trainer ends the current fit/validate/test/predict
    cleanly (teardown hooks, status "finished") instead of going on to train."""


class SIGTERMException(SystemExit):
    """Raised by the fit loop at a batch boundary after a SIGTERM (Lightning's name): it ends the run with exit
    status 0 once the callbacks' `on_exception` (e.g. OnExceptionCheckpoint) and the teardown have run."""
