"""fastlight.utilities: helpers with Lightning's names."""
from .apply_func import move_data_to_device
from .attribute_dict import AttributeDict
from .combined_loader import CombinedLoader
from .grads import grad_norm
from .rank_zero import rank_zero_debug, rank_zero_deprecation, rank_zero_info, rank_zero_only, rank_zero_warn
from .seed import seed_everything

__all__ = [
    "AttributeDict",
    "CombinedLoader",
    "grad_norm",
    "move_data_to_device",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "seed_everything",
]
