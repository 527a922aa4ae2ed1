"""Checkpoint: the base class of callbacks that write checkpoints (the Trainer's `checkpoint_callbacks`)."""
from .callback import Callback


class Checkpoint(Callback):
    """A callback that saves checkpoints. When one is given, the Trainer adds no default ModelCheckpoint, and
    `Trainer(enable_checkpointing=False)` refuses it."""
