"""Builds fastlight._C: the CPU kernels always, the CUDA kernels when a GPU is visible or FASTLIGHT_CUDA=1 asks.

FASTLIGHT_CUDA=auto (default) builds CUDA when a GPU is visible (and torch has CUDA and a toolkit is found),
0 never, 1 always (without a GPU too: wheels, CI's compile check; fails loudly if it cannot).
TORCH_CUDA_ARCH_LIST, when unset: a wheel (or a build without a visible GPU) compiles for
_build.WHEEL_CUDA_ARCH_LIST (sm_80, 86, 89, 90, 100, 120 + PTX); a local build on a GPU machine for that GPU only.
Next to the extension the build writes fastlight/_build_info.py (the torch it was built against), which the
loader checks before loading; a wheel also ships the C++ sources as fastlight/_csrc for FASTLIGHT_JIT=1.
FASTLIGHT_NO_EXTENSION=1 leaves the extension out (scripts/setup.sh's editable install; it builds in place after).
Metadata and dependencies are in pyproject.toml.
"""
import os
import shutil
import sys

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "fastlight"))
import _build  # noqa: E402  (shared with the JIT build; free of fastlight imports)

sys.path.pop(0)

CSRC = os.path.join(HERE, "csrc")
BUILDING_WHEEL = "bdist_wheel" in sys.argv


def want_cuda():
    import torch

    mode = os.environ.get("FASTLIGHT_CUDA", "auto")
    root = _build.cuda_toolkit_root()
    has_gpu = _build.gpu_visible()
    try:
        build, message = _build.decide_cuda(mode, torch.version.cuda, root, has_gpu)
    except _build.CudaBuildError as e:
        sys.exit(f"setup.py: {e}")
    if message:
        print(message, file=sys.stderr)
    if build:
        # torch picks CUDA_HOME once at import, sometimes wrongly; point it (and nvcc) at the real toolkit.
        cpp_extension.CUDA_HOME = root
        os.environ["CUDA_HOME"] = root
        archs = _build.default_cuda_arch_list(BUILDING_WHEEL, has_gpu)
        if archs and not os.environ.get("TORCH_CUDA_ARCH_LIST"):
            os.environ["TORCH_CUDA_ARCH_LIST"] = archs
        print(f"fastlight: building CUDA kernels for TORCH_CUDA_ARCH_LIST={os.environ.get('TORCH_CUDA_ARCH_LIST', '(the visible GPU)')}",
              file=sys.stderr)
    return build


# scripts/setup.sh installs editable with FASTLIGHT_NO_EXTENSION=1 (dependencies and import path only; torch is not
# even imported, each of pip's setup.py runs saves a torch import), then builds the extension once in place with
# `setup.py build_ext --inplace`.
NO_EXTENSION = os.environ.get("FASTLIGHT_NO_EXTENSION", "0") == "1"
if not NO_EXTENSION:
    from torch.utils import cpp_extension

    WITH_CUDA = want_cuda()


def make_extension():
    kwargs = _build.extension_kwargs(CSRC, WITH_CUDA)
    # setuptools wants sources relative to setup.py
    kwargs["sources"] = [os.path.relpath(s, HERE) for s in kwargs["sources"]]
    ext_cls = cpp_extension.CUDAExtension if WITH_CUDA else cpp_extension.CppExtension
    return ext_cls("fastlight._C", **kwargs)


def build_extension_class():
    class BuildExtension(cpp_extension.BuildExtension.with_options(use_ninja=True)):
        """torch's build, then fastlight/_build_info.py next to the extension (in place or in the wheel)."""

        def build_extension(self, ext):
            super().build_extension(ext)
            import torch

            out_dir = os.path.dirname(self.get_ext_fullpath(ext.name))
            info = _build.build_info_source(
                torch.__version__, torch.version.cuda, WITH_CUDA,
                os.environ.get("TORCH_CUDA_ARCH_LIST") if WITH_CUDA else None,
                f"{sys.version_info[0]}.{sys.version_info[1]}",
            )
            with open(os.path.join(out_dir, _build.BUILD_INFO_MODULE), "w") as f:
                f.write(info)

    return BuildExtension


class BuildPy(build_py):
    """Also copies the C++ sources into the package (fastlight/_csrc) so an installed wheel can JIT-build."""

    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install reads csrc/ from the checkout
        dest = os.path.join(self.build_lib, "fastlight", "_csrc")
        shutil.rmtree(dest, ignore_errors=True)
        for rel in _build.source_files(CSRC):
            target = os.path.join(dest, rel)
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copyfile(os.path.join(CSRC, rel), target)


if NO_EXTENSION:
    setup(cmdclass={"build_py": BuildPy})
else:
    setup(ext_modules=[make_extension()], cmdclass={"build_ext": build_extension_class(), "build_py": BuildPy})
