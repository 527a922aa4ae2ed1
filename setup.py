"""Builds fastlight._C: the CPU kernels always, the CUDA kernels when a toolkit and a CUDA torch are present.

FASTLIGHT_CUDA=auto (default) builds CUDA when it can, 0 never, 1 always (and fails loudly if it cannot).
TORCH_CUDA_ARCH_LIST defaults to "8.0;9.0+PTX" so the CUDA sources compile on a machine without a GPU.
"""
import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "fastlight"))
from _build import CudaBuildError, cuda_toolkit_root, decide_cuda, extension_kwargs  # noqa: E402  (shared with the JIT build)

sys.path.pop(0)

from torch.utils import cpp_extension  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))


def want_cuda():
    import torch

    mode = os.environ.get("FASTLIGHT_CUDA", "auto")
    root = cuda_toolkit_root()
    try:
        build, message = decide_cuda(mode, torch.version.cuda, root)
    except CudaBuildError as e:
        sys.exit(f"setup.py: {e}")
    if message:
        print("WARNING: " + message, file=sys.stderr)
    if build:
        # torch picks CUDA_HOME once at import, sometimes wrongly; point it (and nvcc) at the real toolkit.
        cpp_extension.CUDA_HOME = root
        os.environ["CUDA_HOME"] = root
        os.environ.setdefault("TORCH_CUDA_ARCH_LIST", "8.0;9.0+PTX")
    return build


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
