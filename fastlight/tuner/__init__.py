"""fastlight.tuner: Lightning's Tuner (learning-rate range test, batch-size search)."""
from fastlight.tuner.tuning import Tuner

__all__ = ["Tuner"]
