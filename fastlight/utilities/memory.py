"""Memory helpers (`lightning.pytorch.utilities.memory`): recognizing out-of-memory errors, freeing cached CUDA
memory, detaching collections of tensors."""
import gc
from typing import Any

import torch



def recursive_detach(in_dict: Any, to_cpu: bool = False) -> Any:
    """Every tensor in the (nested) collection detached, and moved to the CPU when `to_cpu`."""

    if isinstance(in_dict, torch.Tensor):
        t = in_dict.detach()
        return t.cpu() if to_cpu else t
    if isinstance(in_dict, dict):
        return type(in_dict)((k, recursive_detach(v, to_cpu)) for k, v in in_dict.items())
    if isinstance(in_dict, (list, tuple)) and not hasattr(in_dict, "_fields"):
        return type(in_dict)(recursive_detach(v, to_cpu) for v in in_dict)
    if isinstance(in_dict, tuple):  # a namedtuple
        return type(in_dict)(*(recursive_detach(v, to_cpu) for v in in_dict))
    return in_dict


def _single_message(exception: BaseException) -> str:
    if isinstance(exception, RuntimeError) and len(exception.args) == 1 and isinstance(exception.args[0], str):
        return exception.args[0]
    return ""


def is_cuda_out_of_memory(exception: BaseException) -> bool:
    msg = _single_message(exception)
    return isinstance(exception, torch.cuda.OutOfMemoryError) or ("CUDA" in msg and "out of memory" in msg)


def is_cudnn_snafu(exception: BaseException) -> bool:
    # cuDNN reports a failed workspace allocation as "not supported"
    return "cuDNN error: CUDNN_STATUS_NOT_SUPPORTED." in _single_message(exception)


def is_out_of_cpu_memory(exception: BaseException) -> bool:
    return "DefaultCPUAllocator: can't allocate memory" in _single_message(exception)


def is_oom_error(exception: BaseException) -> bool:
    """An out-of-memory error of CUDA, cuDNN or the CPU allocator (torch raises them as RuntimeError)."""
    return is_cuda_out_of_memory(exception) or is_cudnn_snafu(exception) or is_out_of_cpu_memory(exception)


def garbage_collection_cuda() -> None:
    """Collect garbage, then return cached CUDA memory to the driver (nothing to do without CUDA)."""
    gc.collect()
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return
    try:
        torch.cuda.empty_cache()
    except RuntimeError as e:
        if not is_oom_error(e):  # empty_cache itself can run out of memory: then there is nothing more to free
            raise


__all__ = ["garbage_collection_cuda", "is_cuda_out_of_memory", "is_cudnn_snafu", "is_oom_error",
           "is_out_of_cpu_memory", "recursive_detach"]
