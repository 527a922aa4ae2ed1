"""fastlight.utilities: helpers with Lightning's names."""
from .apply_func import move_data_to_device
from .attribute_dict import AttributeDict
from .combined_loader import CombinedLoader
from .data import suggested_max_num_workers
from .distributed import is_shared_filesystem
from .enums import GradClipAlgorithmType, LightningEnum
from .grads import grad_norm
from .parameter_tying import find_shared_parameters, set_shared_parameters
from .parsing import is_picklable
from .rank_zero import rank_zero_debug, rank_zero_deprecation, rank_zero_info, rank_zero_only, rank_zero_warn
from .seed import seed_everything
from .throughput import measure_flops
from .warnings import disable_possible_user_warnings

__all__ = [
    "AttributeDict",
    "CombinedLoader",
    "GradClipAlgorithmType",
    "LightningEnum",
    "disable_possible_user_warnings",
    "find_shared_parameters",
    "grad_norm",
    "is_picklable",
    "is_shared_filesystem",
    "measure_flops",
    "move_data_to_device",
    "rank_zero_debug",
    "rank_zero_deprecation",
    "rank_zero_info",
    "rank_zero_only",
    "rank_zero_warn",
    "seed_everything",
    "set_shared_parameters",
    "suggested_max_num_workers",
]
