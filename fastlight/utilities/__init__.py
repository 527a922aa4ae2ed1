"""fastlight.utilities: helpers with Lightning's names."""
from .attribute_dict import AttributeDict
from .combined_loader import CombinedLoader
from .rank_zero import rank_zero_debug, rank_zero_deprecation, rank_zero_info, rank_zero_only, rank_zero_warn
from .seed import seed_everything

__all__ = [
    "AttributeDict",
    "CombinedLoader",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "seed_everything",
]
