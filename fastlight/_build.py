"""Build settings shared by setup.py and the opt-in JIT build (FASTLIGHT_JIT=1).

Kept free of fastlight imports so setup.py can load it before the package exists.
"""
import glob
import os
import shutil

# The C++ standard is left to torch.utils.cpp_extension (C++17 or C++20 by torch version).
# Never fast-math: the kernels follow torch's order of operations, and GCC contracts a*b+c into FMA by
# default in GNU mode, which changes rounding against torch's CPU kernels.
# -fno-math-errno only drops errno writes from sqrt & co. (same IEEE results) so that loops calling sqrt can be
# vectorized; it is not part of fast-math's value-changing set.
CXX_FLAGS = ["-O3", "-fopenmp", "-ffp-contract=off", "-fno-fast-math", "-fno-math-errno"]
NVCC_FLAGS = ["-O3", "--expt-relaxed-constexpr"]
LINK_FLAGS = ["-fopenmp"]


def _has_runtime_header(root):
    return bool(root) and os.path.isfile(os.path.join(root, "include", "cuda_runtime.h"))


def cuda_toolkit_root():
    """The CUDA toolkit root (the folder holding include/cuda_runtime.h), or None.

    torch guesses CUDA_HOME from `which nvcc`, which is wrong when nvcc on PATH is a wrapper script;
    try the usual places and the real path of nvcc before giving up.
    """
    candidates = [os.environ.get("CUDA_HOME"), os.environ.get("CUDA_PATH")]
    try:
        from torch.utils.cpp_extension import CUDA_HOME as torch_guess

        candidates.append(torch_guess)
    except Exception:  # torch missing or broken: the caller reports that separately
        pass
    nvcc = shutil.which("nvcc")
    if nvcc:
        real = os.path.realpath(nvcc)
        candidates.append(os.path.dirname(os.path.dirname(real)))
    candidates += ["/usr/local/cuda"] + sorted(glob.glob("/usr/local/cuda-*"), reverse=True) + ["/opt/cuda"]
    for c in candidates:
        if _has_runtime_header(c):
            return os.path.realpath(c)
    return None


class CudaBuildError(RuntimeError):
    pass


def decide_cuda(mode, torch_cuda_version, toolkit_root):
    """Whether to build the CUDA kernels: (build, message). FASTLIGHT_CUDA=`mode` is auto, 0 or 1.

    auto builds CUDA when torch is a CUDA build and a toolkit was found, else warns (message) and builds
    the CPU kernels only; 1 raises CudaBuildError naming what is missing; 0 never builds CUDA.
    """
    mode = str(mode).strip().lower()
    if mode not in ("auto", "0", "1"):
        raise CudaBuildError(f"FASTLIGHT_CUDA must be auto, 0 or 1 (got {mode!r})")
    if mode == "0":
        return False, ""
    problems = []
    if torch_cuda_version is None:
        problems.append("this torch was built without CUDA (torch.version.cuda is None)")
    if toolkit_root is None:
        problems.append(
            "no CUDA toolkit found (looked for include/cuda_runtime.h under $CUDA_HOME, $CUDA_PATH, torch's "
            "guess, the real folder of nvcc and /usr/local/cuda*); set CUDA_HOME to the toolkit root"
        )
    if not problems:
        return True, ""
    if mode == "1":
        raise CudaBuildError("FASTLIGHT_CUDA=1 but " + "; ".join(problems))
    return False, "fastlight: building the CPU kernels only: " + "; ".join(problems)


def source_root(package_dir=None):
    """The repository root holding csrc/, or None when fastlight was installed without its sources."""
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(package_dir)
    return root if os.path.isfile(os.path.join(root, "csrc", "ops.cpp")) else None


def extension_kwargs(root, with_cuda):
    """Sources and flags for fastlight._C; absolute paths."""
    csrc = os.path.join(root, "csrc")
    sources = [os.path.join(csrc, "ops.cpp"), os.path.join(csrc, "module.cpp")]
    sources += sorted(glob.glob(os.path.join(csrc, "cpu", "*.cpp")))
    cxx = list(CXX_FLAGS)
    if with_cuda:
        sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cpp")))
        sources += sorted(glob.glob(os.path.join(csrc, "cuda", "*.cu")))
        cxx.append("-DFASTLIGHT_WITH_CUDA")
    kwargs = dict(
        sources=sources,
        include_dirs=[os.path.join(csrc, "include")],
        extra_compile_args={"cxx": cxx, "nvcc": list(NVCC_FLAGS) + ["-DFASTLIGHT_WITH_CUDA"]}
        if with_cuda
        else {"cxx": cxx},
        extra_link_args=list(LINK_FLAGS),
    )
    return kwargs
