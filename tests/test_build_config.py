"""The build's CUDA decision (FASTLIGHT_CUDA=auto|0|1), CUDA toolkit detection, the arch list, the sources a wheel
ships, and the check of the torch an extension was built against."""
import os

import pytest

from fastlight import _build


def test_cuda_mode_zero_never_builds_cuda():
    assert _build.decide_cuda("0", "13.0", "/usr/local/cuda", has_gpu=True) == (False, "")


def test_cuda_auto_builds_when_a_gpu_is_visible_with_toolkit_and_cuda_torch():
    assert _build.decide_cuda("auto", "13.0", "/usr/local/cuda", has_gpu=True) == (True, "")


def test_cuda_auto_without_a_visible_gpu_builds_cpu_only_even_with_nvcc():
    build, msg = _build.decide_cuda("auto", "13.0", "/usr/local/cuda", has_gpu=False)
    assert not build
    assert "no GPU visible" in msg and "FASTLIGHT_CUDA=1" in msg


def test_cuda_forced_builds_without_a_gpu():
    """CI's compile check and wheel builds: FASTLIGHT_CUDA=1 on a machine without a GPU."""
    assert _build.decide_cuda("1", "13.0", "/usr/local/cuda", has_gpu=False) == (True, "")


def test_cuda_auto_without_toolkit_builds_cpu_only_with_one_clear_warning():
    build, msg = _build.decide_cuda("auto", "13.0", None, has_gpu=True)
    assert not build
    assert "CPU kernels only" in msg and "CUDA_HOME" in msg


def test_cuda_auto_with_cpu_torch_builds_cpu_only():
    build, msg = _build.decide_cuda("auto", None, "/usr/local/cuda", has_gpu=True)
    assert not build and "torch.version.cuda is None" in msg


def test_cuda_forced_without_toolkit_fails_loudly():
    with pytest.raises(_build.CudaBuildError, match="FASTLIGHT_CUDA=1 but no CUDA toolkit found"):
        _build.decide_cuda("1", "13.0", None, has_gpu=False)


def test_cuda_mode_typo_is_rejected_with_the_value():
    with pytest.raises(_build.CudaBuildError, match="must be auto, 0 or 1 \\(got 'yes'\\)"):
        _build.decide_cuda("yes", "13.0", "/x", has_gpu=True)


def test_wheel_builds_target_every_supported_gpu_generation_plus_ptx():
    archs = _build.default_cuda_arch_list(building_wheel=True, has_gpu=True).split(";")
    assert archs == ["8.0", "8.6", "8.9", "9.0", "10.0", "12.0+PTX"]
    # no GPU to ask (CI, a build machine): the same list; a local build on a GPU machine: torch picks that GPU
    assert _build.default_cuda_arch_list(building_wheel=False, has_gpu=False) == _build.WHEEL_CUDA_ARCH_LIST
    assert _build.default_cuda_arch_list(building_wheel=False, has_gpu=True) is None


def test_wheel_arch_list_reaches_nvcc_as_gencode_flags(monkeypatch):
    """torch turns TORCH_CUDA_ARCH_LIST into nvcc's -gencode flags: one cubin per arch, PTX for the last."""
    from torch.utils import cpp_extension

    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", _build.WHEEL_CUDA_ARCH_LIST)
    flags = cpp_extension._get_cuda_arch_flags()
    for sm in ("80", "86", "89", "90", "100", "120"):
        assert f"-gencode=arch=compute_{sm},code=sm_{sm}" in flags
    assert "-gencode=arch=compute_120,code=compute_120" in flags


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
    csrc = _build.source_dir()
    assert csrc is not None
    cpu = _build.extension_kwargs(csrc, with_cuda=False)
    gpu = _build.extension_kwargs(csrc, with_cuda=True)
    assert not any(s.endswith(".cu") for s in cpu["sources"])
    assert any(s.endswith(".cu") for s in gpu["sources"])
    assert "-DFASTLIGHT_WITH_CUDA" in gpu["extra_compile_args"]["cxx"]
    assert "-ffp-contract=off" in cpu["extra_compile_args"]["cxx"]


def test_sources_shipped_for_the_jit_are_every_compiled_file_and_header():
    csrc = _build.source_dir()
    shipped = set(_build.source_files(csrc))
    compiled = {os.path.relpath(s, csrc) for s in _build.extension_kwargs(csrc, with_cuda=True)["sources"]}
    assert compiled <= shipped
    assert "include/fastlight/ops.h" in shipped and "include/fastlight/optim_cpu_body.inc" in shipped
    assert not any(f.startswith("tests") for f in shipped)  # the CTest self-test is not part of the package


def test_installed_package_finds_its_shipped_sources(tmp_path):
    """A wheel has no csrc/ next to the package, only fastlight/_csrc."""
    pkg = tmp_path / "site-packages" / "fastlight"
    (pkg / "_csrc").mkdir(parents=True)
    assert _build.source_dir(str(pkg)) is None
    (pkg / "_csrc" / "ops.cpp").write_text("")
    assert _build.source_dir(str(pkg)) == str(pkg / "_csrc")


@pytest.mark.parametrize(
    "built, built_cuda, with_cuda, now, now_cuda, problem",
    [
        ("2.14.1+cu130", "13.0", True, "2.14.1+cu130", "13.0", None),
        ("2.14.1+cu130", "13.0", False, "2.14.1+cpu", None, None),  # CPU kernels only: any 2.14.1 build
        ("2.14.1", None, False, "2.14.0", None, "built against torch 2.14.1 but torch 2.14.0 is installed"),
        ("2.14.1+cu130", "13.0", False, "2.15.0+cu130", "13.0", "built against torch 2.14.1+cu130 but torch 2.15.0"),
        ("2.14.1+cu130", "13.0", True, "2.14.1+cpu", None, "has CUDA kernels (CUDA 13.0) but the installed torch has no CUDA"),
        ("2.14.1+cu130", "13.0", True, "2.14.1+cu126", "12.6", "built for CUDA 13.0 but torch uses CUDA 12.6"),
    ],
)
def test_torch_mismatch_names_both_versions(built, built_cuda, with_cuda, now, now_cuda, problem):
    got = _build.torch_mismatch(built, built_cuda, with_cuda, now, now_cuda)
    if problem is None:
        assert got is None
    else:
        assert problem in got


def test_build_info_records_the_torch_and_archs():
    ns = {}
    exec(_build.build_info_source("2.14.1+cu130", "13.0", True, "8.0;12.0+PTX", "3.11"), ns)
    assert (ns["TORCH_VERSION"], ns["TORCH_CUDA"], ns["WITH_CUDA"], ns["CUDA_ARCH_LIST"], ns["PYTHON"]) == (
        "2.14.1+cu130", "13.0", True, "8.0;12.0+PTX", "3.11")


def test_import_needs_only_the_declared_run_time_requirements():
    """Every third-party module `import fastlight` loads (beyond what torch itself loads) belongs to a distribution
    listed in pyproject's `dependencies`: a wheel installed next to torch alone must import. (`packaging` was once
    imported without being declared; scripts/check_wheel.sh found it in a fresh venv.)"""
    import json
    import re
    import subprocess
    import sys
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    from importlib.metadata import packages_distributions

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    with open(os.path.join(root, "pyproject.toml"), "rb") as f:
        declared = {re.split(r"[ <>=!~;\[]", r, maxsplit=1)[0].lower().replace("_", "-")
                    for r in tomllib.load(f)["project"]["dependencies"]}
    # used only where installed; hidden here (sys.modules[name] = None), so the import must also work without them
    optional = ["lightning_utilities"]
    code = (f"import json, sys, torch; sys.modules.update(dict.fromkeys({optional!r})); "
            "before = {m.split('.')[0] for m in sys.modules}; import fastlight; "
            "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules} - before)))")
    loaded = json.loads(subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True,
                                       check=True).stdout.splitlines()[-1])
    dists = packages_distributions()
    third_party = [m for m in loaded if m != "fastlight" and not m.startswith("_") and m not in sys.stdlib_module_names]
    undeclared = {m: dists.get(m) for m in third_party
                  if not {d.lower().replace("_", "-") for d in dists.get(m, [m])} & declared}
    assert not undeclared, f"`import fastlight` loads modules of undeclared distributions: {undeclared}"
