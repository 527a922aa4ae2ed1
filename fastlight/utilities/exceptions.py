"""Exceptions with Lightning's names (`pytorch_lightning.utilities.exceptions`)."""


class MisconfigurationException(Exception):
    """A configuration the tuner (or another feature) cannot run with."""


class _TunerExitException(Exception):
    """Raised by a tuner callback run through `Tuner`: the Trainer ends the current fit/validate/test/predict
    cleanly (teardown hooks, status "finished") instead of going on to train."""
