"""TrainingSpikeException: raised by the SpikeDetection callback (Lightning's lightning_fabric.utilities.spike name)."""
from typing import Any


class TrainingSpikeException(RuntimeError):
    def __init__(self, batch_idx: int, *args: Any, **kwargs: Any) -> None:
        super().__init__(f"Training spike detected in batch {batch_idx}", *args, **kwargs)
