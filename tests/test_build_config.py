"""The build's CUDA decision (FASTLIGHT_CUDA=auto|0|1) and CUDA toolkit detection."""
import os

import pytest

from fastlight import _build


def test_cuda_mode_zero_never_builds_cuda():
    assert _build.decide_cuda("0", "13.0", "/usr/local/cuda") == (False, "")


def test_cuda_auto_builds_when_toolkit_and_cuda_torch_present():
    assert _build.decide_cuda("auto", "13.0", "/usr/local/cuda") == (True, "")


def test_cuda_auto_without_toolkit_builds_cpu_only_with_one_clear_warning():
    build, msg = _build.decide_cuda("auto", "13.0", None)
    assert not build
    assert "CPU kernels only" in msg and "CUDA_HOME" in msg


def test_cuda_auto_with_cpu_torch_builds_cpu_only():
    build, msg = _build.decide_cuda("auto", None, "/usr/local/cuda")
    assert not build and "torch.version.cuda is None" in msg


def test_cuda_forced_without_toolkit_fails_loudly():
    with pytest.raises(_build.CudaBuildError, match="FASTLIGHT_CUDA=1 but no CUDA toolkit found"):
        _build.decide_cuda("1", "13.0", None)


def test_cuda_mode_typo_is_rejected_with_the_value():
    with pytest.raises(_build.CudaBuildError, match="must be auto, 0 or 1 \\(got 'yes'\\)"):
        _build.decide_cuda("yes", "13.0", "/x")


def test_toolkit_detection_skips_a_cuda_home_without_headers(tmp_path, monkeypatch):
    fake = tmp_path / "wrapper-prefix"
    (fake / "bin").mkdir(parents=True)
    real = tmp_path / "cuda-real"
    (real / "include").mkdir(parents=True)
    (real / "include" / "cuda_runtime.h").write_text("")
    monkeypatch.setenv("CUDA_HOME", str(fake))
    monkeypatch.setenv("CUDA_PATH", str(real))
    assert _build.cuda_toolkit_root() == os.path.realpath(real)


def test_extension_sources_include_cuda_only_when_asked():
    root = _build.source_root()
    assert root is not None
    cpu = _build.extension_kwargs(root, with_cuda=False)
    gpu = _build.extension_kwargs(root, with_cuda=True)
    assert not any(s.endswith(".cu") for s in cpu["sources"])
    assert any(s.endswith(".cu") for s in gpu["sources"])
    assert "-DFASTLIGHT_WITH_CUDA" in gpu["extra_compile_args"]["cxx"]
    assert "-ffp-contract=off" in cpu["extra_compile_args"]["cxx"]
