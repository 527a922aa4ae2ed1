"""Types shared by the trainer and callbacks (Lightning keeps them in `pytorch_lightning.utilities.types`)."""
from dataclasses import dataclass
from typing import Any, Optional


@dataclass
class LRSchedulerConfig:
    """One LR scheduler and when the loop steps it (the dict form of `configure_optimizers`, normalized)."""

    scheduler: Any
    name: Optional[str] = None
    interval: str = "epoch"
    frequency: int = 1
    reduce_on_plateau: bool = False
    monitor: Optional[str] = None
    strict: bool = True
