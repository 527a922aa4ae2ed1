"""Builds fastlight._C: the CPU kernels always, the CUDA kernels when a toolkit and a CUDA torch are present.

FASTLIGHT_CUDA=auto (default) builds CUDA when it can, 0 never, 1 always (and fails loudly if it cannot).
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0+PTX" so the CUDA sources compile on a machine without a GPU.
"""
import glob
import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastlight"))
from _build import cuda_toolkit_root, extension_kwargs  # noqa: E402  (shared with the JIT build)

sys.path.pop(0)

from torch.utils import cpp_extension  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda():
    mode = os.environ.get("FASTLIGHT_CUDA", "auto").strip().lower()
    if mode not in ("auto", "0", "1"):
        sys.exit(f"setup.py: FASTLIGHT_CUDA must be auto, 0 or 1 (got {mode!r})")
    if mode == "0":
        return False
    import torch

    problems = []
    if torch.version.cuda is None:
        problems.append("this torch was built without CUDA (torch.version.cuda is None)")
    root = cuda_toolkit_root()
    if root is None:
        problems.append(
            "no CUDA toolkit found (looked for include/cuda_runtime.h under $CUDA_HOME, $CUDA_PATH, "
            "torch's guess, the folder of nvcc and /usr/local/cuda*); set CUDA_HOME to the toolkit root"
        )
    if problems:
        msg = "fastlight: building CPU kernels only: " + "; ".join(problems)
        if mode == "1":
            sys.exit("setup.py: FASTLIGHT_CUDA=1 but " + "; ".join(problems))
        print("WARNING: " + msg, file=sys.stderr)
        return False
    # torch picks CUDA_HOME once at import; point it (and nvcc) at the real toolkit.
    cpp_extension.CUDA_HOME = root
    os.environ["CUDA_HOME"] = root
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    return True


def make_extension():
    with_cuda = want_cuda()
    kwargs = extension_kwargs(HERE, with_cuda)
    # setuptools wants sources relative to setup.py
    kwargs["sources"] = [os.path.relpath(s, HERE) for s in kwargs["sources"]]
    ext_cls = cpp_extension.CUDAExtension if with_cuda else cpp_extension.CppExtension
    return ext_cls("fastlight._C", **kwargs)


setup(
    ext_modules=[make_extension()],
    cmdclass={"build_ext": cpp_extension.BuildExtension.with_options(use_ninja=True)},
)
