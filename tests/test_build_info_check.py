"""An extension built against another torch is not loaded: the loader reads fastlight/_build_info.py (written by the
build), says clearly what does not match and what to do, and fastlight runs the pure-torch references."""
import sys
import types
import warnings

import pytest
import torch

import fastlight.ops as ops
from fastlight import _build
from fastlight.ops import _loader


@pytest.fixture
def fake_build_info(monkeypatch):
    """Installs a fastlight._build_info recording the given torch; the loader is reset before and after."""

    def install(torch_version, torch_cuda=None, with_cuda=False):
        info = types.ModuleType("fastlight._build_info")
        info.TORCH_VERSION, info.TORCH_CUDA, info.WITH_CUDA = torch_version, torch_cuda, with_cuda
        info.CUDA_ARCH_LIST, info.PYTHON = None, "3.11"
        monkeypatch.setitem(sys.modules, "fastlight._build_info", info)
        monkeypatch.delenv("FASTLIGHT_KERNELS", raising=False)
        monkeypatch.setenv("FASTLIGHT_JIT", "0")
        ops._reset_for_tests()

    yield install
    monkeypatch.undo()
    ops._reset_for_tests()


def _load_with_warnings():
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        b = ops.backend("cpu")
        out = ops.grad_stats([torch.tensor([3.0, 4.0])]).tolist()
    return b, out, [str(x.message) for x in w if "native kernels disabled" in str(x.message)]


def test_extension_built_for_another_torch_is_refused_with_a_clear_message(fake_build_info):
    fake_build_info("2.13.0+cpu")
    b, out, msgs = _load_with_warnings()
    assert b == "torch" and out == [25.0, 0.0]  # the references run
    assert len(msgs) == 1
    assert f"built against torch 2.13.0+cpu but torch {torch.__version__} is installed" in msgs[0]
    assert "FASTLIGHT_JIT=1" in msgs[0]  # sources and ninja are here: the JIT is offered
    assert _loader.prebuilt_module() is None  # the eager entry points of the refused library are not used


def test_without_sources_the_jit_is_not_suggested(fake_build_info, monkeypatch):
    fake_build_info("2.13.0")
    monkeypatch.setattr(_build, "source_dir", lambda package_dir=None: None)
    _, _, msgs = _load_with_warnings()
    assert len(msgs) == 1
    assert "FASTLIGHT_JIT=1 cannot help here: the C++ sources are not installed" in msgs[0]


@pytest.mark.skipif(torch.version.cuda is None, reason="needs a CUDA build of torch to fake a CUDA mismatch")
def test_cuda_kernels_for_another_cuda_major_are_refused(fake_build_info):
    other = "12.8" if not torch.version.cuda.startswith("12.") else "13.0"
    fake_build_info(torch.__version__, other, with_cuda=True)
    _, _, msgs = _load_with_warnings()
    assert len(msgs) == 1 and f"built for CUDA {other} but torch uses CUDA {torch.version.cuda}" in msgs[0]


def test_matching_build_info_loads_the_extension(fake_build_info):
    if not _build.source_dir() or ops.backend("cpu") != "native":
        pytest.skip("no native extension in this checkout")
    fake_build_info(torch.__version__, torch.version.cuda, with_cuda=False)
    b, out, msgs = _load_with_warnings()
    assert (b, out, msgs) == ("native", [25.0, 0.0], [])
