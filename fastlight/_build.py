"""Build settings shared by setup.py and the opt-in JIT build (FASTLIGHT_JIT=1).

Kept free of fastlight imports (and of torch at import) so setup.py can load it before the package exists.
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


# The GPUs a distributed wheel carries kernels for (Ampere A100 and RTX 30, Ada, Hopper, Blackwell data-center
# and consumer), plus PTX of the newest so that later GPUs JIT-compile it. Used when TORCH_CUDA_ARCH_LIST is
# unset and the build is a wheel or no GPU is visible; a local build on a GPU machine compiles for that GPU only.
WHEEL_CUDA_ARCH_LIST = "8.0;8.6;8.9;9.0;10.0;12.0+PTX"


def gpu_visible():
    """Whether this process sees a CUDA GPU (torch.cuda.is_available(); CUDA_VISIBLE_DEVICES is honoured)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # no torch, or a driver that cannot be queried: no usable GPU
        return False


def default_cuda_arch_list(building_wheel, has_gpu):
    """TORCH_CUDA_ARCH_LIST to use when the user set none: None lets torch pick the visible GPU's arch."""
    if building_wheel or not has_gpu:
        return WHEEL_CUDA_ARCH_LIST
    return None


def decide_cuda(mode, torch_cuda_version, toolkit_root, has_gpu):
    """Whether to build the CUDA kernels: (build, message). FASTLIGHT_CUDA=`mode` is auto, 0 or 1.

    auto builds CUDA when a GPU is visible (has_gpu), torch is a CUDA build and a toolkit was found; otherwise
    it builds the CPU kernels only and says why (message). 1 builds CUDA without a GPU (wheels, CI's compile
    check) and raises CudaBuildError naming what is missing; 0 never builds CUDA.
    """
    mode = str(mode).strip().lower()
    if mode not in ("auto", "0", "1"):
        raise CudaBuildError(f"FASTLIGHT_CUDA must be auto, 0 or 1 (got {mode!r})")
    if mode == "0":
        return False, ""
    if mode == "auto" and not has_gpu:
        return False, "fastlight: no GPU visible: building the CPU kernels only (FASTLIGHT_CUDA=1 builds the CUDA ones)"
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


SOURCE_SUFFIXES = (".cpp", ".cu", ".h", ".cuh", ".inc")


def source_dir(package_dir=None):
    """The folder holding the C++ sources (ops.cpp, cpu/, cuda/, include/), or None.

    A checkout has them in <repo>/csrc; an installed wheel ships a copy as fastlight/_csrc (for FASTLIGHT_JIT=1).
    """
    package_dir = package_dir or os.path.dirname(os.path.abspath(__file__))
    for d in (os.path.join(os.path.dirname(package_dir), "csrc"), os.path.join(package_dir, "_csrc")):
        if os.path.isfile(os.path.join(d, "ops.cpp")):
            return d
    return None


def source_files(csrc):
    """Every C++/CUDA source and header under csrc (relative paths, sorted): what a wheel ships for the JIT."""
    out = []
    for dirpath, dirnames, filenames in os.walk(csrc):
        dirnames[:] = sorted(d for d in dirnames if d != "tests")
        for f in filenames:
            if f.endswith(SOURCE_SUFFIXES):
                out.append(os.path.relpath(os.path.join(dirpath, f), csrc))
    return sorted(out)


# ---- what a build was made against (fastlight/_build_info.py, written next to the built extension) ----------

BUILD_INFO_MODULE = "_build_info.py"


def build_info_source(torch_version, torch_cuda, with_cuda, cuda_arch_list, python_version):
    return (
        '"""Written by the build (setup.py): what fastlight._C was compiled against. Do not edit."""\n'
        f"TORCH_VERSION = {torch_version!r}\n"
        f"TORCH_CUDA = {torch_cuda!r}\n"
        f"WITH_CUDA = {bool(with_cuda)!r}\n"
        f"CUDA_ARCH_LIST = {cuda_arch_list!r}\n"
        f"PYTHON = {python_version!r}\n"
    )


def _release(version):
    """'2.14.1+cu130' -> (2, 14, 1); the local part (+cu130) and pre-release tags are dropped."""
    nums = []
    for part in str(version).split("+")[0].split("."):
        digits = ""
        for ch in part:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        nums.append(int(digits))
    return tuple(nums)


def torch_mismatch(built_torch, built_cuda, with_cuda, torch_version, torch_cuda):
    """Why an extension built against torch `built_torch` cannot be loaded under `torch_version`, or None.

    The extension uses torch's C++ API, whose ABI changes between releases: the release must be the same
    (2.14.1 == 2.14.1+cpu). CUDA kernels also need a CUDA torch of the same CUDA major version.
    """
    if _release(built_torch) != _release(torch_version):
        return (
            f"fastlight._C was built against torch {built_torch} but torch {torch_version} is installed, "
            "and torch's C++ ABI differs between releases"
        )
    if with_cuda:
        if torch_cuda is None:
            return f"fastlight._C has CUDA kernels (CUDA {built_cuda}) but the installed torch has no CUDA"
        if built_cuda and str(built_cuda).split(".")[0] != str(torch_cuda).split(".")[0]:
            return f"fastlight._C was built for CUDA {built_cuda} but torch uses CUDA {torch_cuda}"
    return None


def extension_kwargs(csrc, with_cuda):
    """Sources and flags for fastlight._C from the source folder csrc (see source_dir); absolute paths."""
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
