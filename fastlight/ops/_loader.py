"""Finding and loading the native library fastlight._C, once per process.

Order: FASTLIGHT_KERNELS=torch forces the pure-torch references; otherwise the prebuilt extension, unless
fastlight/_build_info.py says it was built against another torch (loading it could crash: the C++ ABI differs
between torch releases); if it is missing or unusable and FASTLIGHT_JIT=1, a cached JIT build from the C++
sources (csrc/ in a checkout, fastlight/_csrc in a wheel) with ninja. Any failure is said once (a warning) and
the references are used: importing fastlight never fails because of the extension.
"""
import os
import shutil
import sys
import threading

_lock = threading.Lock()
_state = None  # (loaded: bool, reason: str)
_prebuilt = None  # the fastlight._C module once imported (its eager entry points); never set for a JIT build


def _jit_build_dir(csrc, torch_version, with_cuda):
    """A checkout builds under <repo>/.fastlight_jit; an installed package (site-packages may be read-only)
    under $FASTLIGHT_JIT_DIR or ~/.cache/fastlight/jit, one folder per torch version and kernel set."""
    flavour = "cuda" if with_cuda else "cpu"
    if os.path.basename(csrc) == "csrc":
        return os.path.join(os.path.dirname(csrc), ".fastlight_jit", flavour)
    base = os.environ.get("FASTLIGHT_JIT_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "fastlight", "jit"
    )
    return os.path.join(base, f"torch-{torch_version}-{flavour}")


def _ninja_on_path():
    """Whether `ninja` runs; a venv used without activation has it in the interpreter's folder: put that on PATH."""
    if shutil.which("ninja"):
        return True
    bin_dir = os.path.dirname(sys.executable)
    if shutil.which("ninja", path=bin_dir):
        os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
        return True
    return False


def _jit_missing():
    """Why a JIT build cannot work here (no sources, no ninja), or None."""
    from .. import _build

    if _build.source_dir() is None:
        return "the C++ sources are not installed with fastlight (neither csrc/ nor fastlight/_csrc)"
    if not _ninja_on_path():
        return "ninja is not installed (pip install 'fastlight[jit]')"
    return None


def _jit_build():
    from .. import _build

    missing = _jit_missing()
    if missing:
        raise RuntimeError(missing)
    csrc = _build.source_dir()
    import torch
    from torch.utils import cpp_extension

    cuda_root = _build.cuda_toolkit_root()
    with_cuda, _ = _build.decide_cuda(
        os.environ.get("FASTLIGHT_CUDA", "auto"), torch.version.cuda, cuda_root, _build.gpu_visible()
    )
    if with_cuda:
        cpp_extension.CUDA_HOME = cuda_root
        os.environ["CUDA_HOME"] = cuda_root
    kw = _build.extension_kwargs(csrc, with_cuda)
    build_dir = _jit_build_dir(csrc, torch.__version__, with_cuda)
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
    global _state, _prebuilt
    if _state is not None:
        return _state
    with _lock:
        if _state is not None:
            return _state
        if os.environ.get("FASTLIGHT_KERNELS", "").strip().lower() == "torch":
            _state = (False, "FASTLIGHT_KERNELS=torch forces the pure-torch references")
            return _state
        try:
            mismatch = _built_for_other_torch()
            if mismatch:
                raise ImportError(mismatch)
            from .. import _C  # registers torch.ops.fastlight.*

            _prebuilt = _C
            _state = (True, "prebuilt extension fastlight._C")
        except Exception as e:  # ImportError, or an undefined symbol from a torch mismatch
            prebuilt_error = str(e) if isinstance(e, ImportError) else f"{type(e).__name__}: {e}"
            if os.environ.get("FASTLIGHT_JIT", "0") == "1":
                try:
                    _jit_build()
                    _state = (True, "JIT-built extension (FASTLIGHT_JIT=1)")
                except Exception as je:
                    _state = (False, f"extension unavailable ({prebuilt_error}); JIT build failed: {je}")
            else:
                missing = _jit_missing()
                hint = (
                    "install a fastlight built for this torch, or set FASTLIGHT_JIT=1 to build the kernels now"
                    if missing is None
                    else f"install a fastlight built for this torch (FASTLIGHT_JIT=1 cannot help here: {missing})"
                )
                _state = (False, f"extension unavailable ({prebuilt_error}); {hint}")
            if not _state[0]:
                from .. import _warn

                _warn.warn(f"fastlight: native kernels disabled, using pure-torch references: {_state[1]}", RuntimeWarning)
        return _state


def _built_for_other_torch():
    """Why the prebuilt extension does not fit the installed torch (from fastlight/_build_info.py), or None.

    No _build_info (an extension copied by hand, an old build): no verdict, the import itself decides."""
    try:
        from .. import _build_info as info
    except ImportError:
        return None
    import torch

    from .. import _build

    return _build.torch_mismatch(info.TORCH_VERSION, info.TORCH_CUDA, info.WITH_CUDA, torch.__version__,
                                 torch.version.cuda)


def prebuilt_module():
    """fastlight._C if the prebuilt extension was loaded (it has eager entry points), else None."""
    load()
    return _prebuilt


def _reset_for_tests():
    global _state, _prebuilt
    _state = None
    _prebuilt = None
