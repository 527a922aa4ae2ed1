"""Finding and loading the native library fastlight._C, once per process.

Order: FASTLIGHT_KERNELS=torch forces the pure-torch references; otherwise the prebuilt extension;
if that is missing and FASTLIGHT_JIT=1, a cached JIT build from csrc/ with ninja. Any failure is said
once (a warning) and the references are used: importing fastlight never fails because of the extension.
"""
import os
import threading
import warnings

_lock = threading.Lock()
_state = None  # (loaded: bool, reason: str)


def _jit_build():
    from .. import _build

    root = _build.source_root()
    if root is None:
        raise RuntimeError("FASTLIGHT_JIT=1 but the C++ sources (csrc/) are not next to the fastlight package")
    import torch
    from torch.utils import cpp_extension

    cuda_root = _build.cuda_toolkit_root()
    with_cuda, _ = _build.decide_cuda(os.environ.get("FASTLIGHT_CUDA", "auto"), torch.version.cuda, cuda_root)
    if with_cuda:
        cpp_extension.CUDA_HOME = cuda_root
        os.environ["CUDA_HOME"] = cuda_root
    kw = _build.extension_kwargs(root, with_cuda)
    build_dir = os.path.join(root, ".fastlight_jit", "cuda" if with_cuda else "cpu")
    os.makedirs(build_dir, exist_ok=True)
    cpp_extension.load(
        name="fastlight_jit_C",
        sources=kw["sources"],
        extra_include_paths=kw["include_dirs"],
        extra_cflags=kw["extra_compile_args"]["cxx"],
        extra_cuda_cflags=kw["extra_compile_args"].get("nvcc"),
        extra_ldflags=kw["extra_link_args"],
        build_directory=build_dir,
        with_cuda=with_cuda,
        is_python_module=False,  # loads the .so so TORCH_LIBRARY registers the ops
        verbose=False,
    )


def load():
    """(loaded, reason): whether the native ops are registered in torch.ops.fastlight, and why (not)."""
    global _state
    if _state is not None:
        return _state
    with _lock:
        if _state is not None:
            return _state
        if os.environ.get("FASTLIGHT_KERNELS", "").strip().lower() == "torch":
            _state = (False, "FASTLIGHT_KERNELS=torch forces the pure-torch references")
            return _state
        try:
            from .. import _C  # noqa: F401  (registers torch.ops.fastlight.*)

            _state = (True, "prebuilt extension fastlight._C")
        except Exception as e:  # ImportError, or an undefined symbol from a torch mismatch
            prebuilt_error = f"{type(e).__name__}: {e}"
            if os.environ.get("FASTLIGHT_JIT", "0") == "1":
                try:
                    _jit_build()
                    _state = (True, "JIT-built extension (FASTLIGHT_JIT=1)")
                except Exception as je:
                    _state = (False, f"extension unavailable ({prebuilt_error}); JIT build failed: {je}")
            else:
                _state = (False, f"extension unavailable ({prebuilt_error}); set FASTLIGHT_JIT=1 to build it now")
            if not _state[0]:
                warnings.warn(
                    f"fastlight: native kernels disabled, using pure-torch references: {_state[1]}",
                    RuntimeWarning,
                    stacklevel=3,
                )
        return _state


def _reset_for_tests():
    global _state
    _state = None
