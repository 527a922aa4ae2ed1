"""Warning categories with Lightning's names (`lightning.pytorch.utilities.warnings`)."""
import warnings

from .rank_zero import LightningDeprecationWarning


class PossibleUserWarning(UserWarning):
    """A warning about something that is often, but not always, a mistake (e.g. few dataloader workers): filter it
    with `warnings.filterwarnings("ignore", category=PossibleUserWarning)` or `disable_possible_user_warnings()`."""


def disable_possible_user_warnings(module: str = "") -> None:
    """Ignore PossibleUserWarning (only those raised from `module`, a regex, when given)."""
    warnings.filterwarnings("ignore", category=PossibleUserWarning, module=module)


__all__ = ["LightningDeprecationWarning", "PossibleUserWarning", "disable_possible_user_warnings"]
