#!/usr/bin/env bash
# Builds fastlight's sdist and wheel and checks the wheel as a user gets it:
#   1. `python -m build --no-isolation` (the wheel is built from the sdist, so the sdist is checked too);
#   2. a fresh virtual environment (no system site-packages) with torch from the package index, then the wheel;
#   3. from a folder outside the source tree: the native kernels load from the installed wheel, the metadata lists
#      no build tool as a run-time requirement, the build recorded the torch it was built against;
#   4. a faked older torch in that record: a clear message and the pure-torch references;
#   5. FASTLIGHT_JIT=1 with the prebuilt library removed: the kernels are built from the sources the wheel ships.
# Slow (a full build, a torch install into a new venv, a JIT build): 7 minutes on 2 busy cores (2026-12-05). Not in CI.
#
# Usage: bash scripts/check_wheel.sh [WHEEL]   (with a wheel given, step 1 is skipped)
# Environment: PYTHON (the interpreter that builds; needs torch and `build`; default .venv/bin/python),
#   FASTLIGHT_CHECK_TORCH (what the fresh venv installs; default: the builder's torch release),
#   FASTLIGHT_CHECK_JIT=0 skips step 5, FASTLIGHT_CHECK_VENV=DIR keeps the venv there and reuses it next time
#   (a venv created by this script, not one with system site-packages), FASTLIGHT_CUDA / TORCH_CUDA_ARCH_LIST as for any build, KEEP=1 keeps the
#   temporary folder.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
REPO=$PWD
PY=${PYTHON:-.venv/bin/python}
T0=$SECONDS
TMP=$(mktemp -d /tmp/fastlight-wheel-check.XXXXXX)
[ "${KEEP:-0}" = 1 ] || trap 'rm -rf "$TMP"' EXIT
say() { echo "check_wheel [$((SECONDS - T0)) s]: $*"; }
fail() { echo "check_wheel: FAILED: $*" >&2; exit 1; }

if [ $# -ge 1 ]; then
  WHEEL=$(realpath "$1")
else
  say "building sdist and wheel (log: $TMP/build.log)"
  "$PY" -c "import build.__main__" 2>/dev/null || "$PY" -m pip install -q build
  MAX_JOBS=${MAX_JOBS:-2} "$PY" -m build --no-isolation -o "$TMP/dist" . > "$TMP/build.log" 2>&1 \
    || { tail -n 40 "$TMP/build.log"; fail "python -m build"; }
  WHEEL=$(ls "$TMP"/dist/fastlight-*.whl)
  SDIST=$(ls "$TMP"/dist/fastlight-*.tar.gz)
  tar -tzf "$SDIST" > "$TMP/sdist.txt"
  grep -q "/csrc/ops.cpp$" "$TMP/sdist.txt" || fail "the sdist lacks csrc/"
  if grep -qE "\.so$|_build_info\.py$" "$TMP/sdist.txt"; then fail "the sdist holds a built extension"; fi
  say "built $(basename "$SDIST") and $(basename "$WHEEL") ($(du -h "$WHEEL" | cut -f1))"
fi
TORCH=${FASTLIGHT_CHECK_TORCH:-torch==$("$PY" -c "import torch; print(torch.__version__.split('+')[0])")}

VENV=${FASTLIGHT_CHECK_VENV:-$TMP/venv}
VPY=$VENV/bin/python
if [ -x "$VPY" ]; then
  say "reusing $VENV (FASTLIGHT_CHECK_VENV), reinstalling the wheel (log: $TMP/install.log)"
  "$VPY" -m pip uninstall -y fastlight > "$TMP/install.log" 2>&1 || true
else
  say "fresh venv $VENV, installing $TORCH and the wheel (log: $TMP/install.log)"
  BASE_PY=$("$PY" -c "import sys; print(getattr(sys, '_base_executable', sys.executable))")
  "$BASE_PY" -m venv "$VENV"
fi
"$VPY" -m pip install --disable-pip-version-check --no-compile "$TORCH" "$WHEEL" >> "$TMP/install.log" 2>&1 \
  || { tail -n 40 "$TMP/install.log"; fail "pip install"; }
"$VPY" -c "import sys; assert sys.prefix != sys.base_prefix" || fail "not a virtual environment"

mkdir -p "$TMP/elsewhere" && cd "$TMP/elsewhere"  # nothing of the source tree on sys.path
say "importing the installed wheel from $PWD"
"$VPY" - "$REPO" <<'EOF' || fail "installed wheel"
import importlib.metadata as md, os, re, sys, warnings
repo = sys.argv[1]
import torch
warnings.filterwarnings("error", message="fastlight")  # no fallback warning allowed here
import fastlight, fastlight.ops as ops
from fastlight import _build_info as info
assert not os.path.realpath(fastlight.__file__).startswith(os.path.realpath(repo)), fastlight.__file__
assert ops.backend("cpu") == "native", ops.backend_reason("cpu")
assert ops.backend_reason("cpu") == "prebuilt extension fastlight._C", ops.backend_reason("cpu")
assert ops.grad_stats([torch.tensor([3.0, 4.0])]).tolist() == [25.0, 0.0]
assert info.TORCH_VERSION == torch.__version__, (info.TORCH_VERSION, torch.__version__)
runtime = [r for r in (md.requires("fastlight") or []) if "extra ==" not in r]
names = {re.split(r"[ <>=!~;\[]", r, 1)[0].lower() for r in runtime}
build_tools = names & {"ninja", "pybind11", "setuptools", "wheel", "cmake", "build"}
assert not build_tools, f"build tools among the run-time requirements: {sorted(build_tools)}"
meta = md.metadata("fastlight")
for field in ("License-Expression", "Author", "Requires-Python"):
    assert meta.get(field), f"metadata lacks {field}"
print(f"  kernels: {ops.backend_reason('cpu')}; built against torch {info.TORCH_VERSION}, CUDA kernels: "
      f"{info.WITH_CUDA} {info.CUDA_ARCH_LIST or ''}")
print(f"  run-time requirements: {runtime}; License: {meta['License-Expression']}; Python {meta['Requires-Python']}")
# a short fit with the default Trainer: every module it imports must come with the wheel's requirements
import tempfile
from torch.utils.data import DataLoader, TensorDataset
class Tiny(fastlight.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(4, 1)
    def training_step(self, batch, batch_idx):
        loss = torch.nn.functional.mse_loss(self.layer(batch[0]), batch[1])
        self.log("loss", loss)
        return loss
    def configure_optimizers(self):
        return torch.optim.AdamW(self.parameters(), lr=0.01)
data = DataLoader(TensorDataset(torch.randn(32, 4), torch.randn(32, 1)), batch_size=8)
with tempfile.TemporaryDirectory() as root, warnings.catch_warnings():
    warnings.simplefilter("ignore")
    trainer = fastlight.Trainer(max_epochs=1, default_root_dir=root, enable_progress_bar=False)
    trainer.fit(Tiny(), data)
    assert trainer.global_step == 4 and os.path.isdir(os.path.join(root, "lightning_logs")), trainer.global_step
print(f"  a default-Trainer fit: {trainer.global_step} steps, logger {type(trainer.logger).__name__}")
EOF

PKG=$("$VPY" -c "import os, fastlight; print(os.path.dirname(fastlight.__file__))")
if grep -q "^WITH_CUDA = True" "$PKG/_build_info.py"; then
  say "CUDA kernels in the wheel's library (fatbin entries; cuobjdump --list-elf says the same where installed)"
  python3 - "$PKG" <<'EOF' || fail "CUDA archs"
import glob, struct, sys
lib = open(glob.glob(sys.argv[1] + "/_C*.so")[0], "rb").read()
magic, found, i = struct.pack("<I", 0xBA55ED50), set(), 0
while (i := lib.find(magic, i)) != -1:  # fatbin: header (magic, version, header size, size), then entries
    _, _, hsz, size = struct.unpack_from("<IHHQ", lib, i)
    p, end = i + hsz, i + hsz + size
    while p < end:
        kind, _, ehsz, padded = struct.unpack_from("<HHII", lib, p)
        found.add(({1: "compute", 2: "sm"}[kind], struct.unpack_from("<I", lib, p + 28)[0]))
        p += ehsz + padded
    i = end
want = {("sm", a) for a in (80, 86, 89, 90, 100, 120)} | {("compute", 120)}
print("  " + " ".join(f"{k}_{a}" for k, a in sorted(found)))
assert want <= found, f"missing: {sorted(want - found)}"
EOF
fi
say "a build recorded for another torch: clear message, pure-torch references"
cp "$PKG/_build_info.py" "$TMP/build_info.bak"
sed -i "s/^TORCH_VERSION = .*/TORCH_VERSION = '2.0.0'/" "$PKG/_build_info.py"
"$VPY" - <<'EOF' || fail "torch mismatch"
import warnings
with warnings.catch_warnings(record=True) as w:
    warnings.simplefilter("always")
    import torch, fastlight.ops as ops
    assert ops.backend("cpu") == "torch"
    assert ops.grad_stats([torch.tensor([3.0, 4.0])]).tolist() == [25.0, 0.0]
msgs = [str(x.message) for x in w if "native kernels disabled" in str(x.message)]
assert len(msgs) == 1 and f"built against torch 2.0.0 but torch {torch.__version__} is installed" in msgs[0], msgs
print("  " + msgs[0])
EOF
cp "$TMP/build_info.bak" "$PKG/_build_info.py"

if [ "${FASTLIGHT_CHECK_JIT:-1}" = 1 ]; then
  say "FASTLIGHT_JIT=1 from the wheel's shipped sources, prebuilt library removed (log: $TMP/jit.log)"
  "$VPY" -m pip install --disable-pip-version-check "$WHEEL[jit]" >> "$TMP/install.log" 2>&1 || fail "pip install [jit]"
  mv "$PKG"/_C*.so "$TMP/"
  FASTLIGHT_JIT=1 FASTLIGHT_JIT_DIR="$TMP/jit" MAX_JOBS=${MAX_JOBS:-2} "$VPY" - > "$TMP/jit.log" 2>&1 <<'EOF' || { tail -n 30 "$TMP/jit.log"; fail "JIT build"; }
import warnings
import torch
warnings.filterwarnings("error", message="fastlight")
import fastlight.ops as ops
assert ops.backend("cpu") == "native", ops.backend_reason("cpu")
assert ops.backend_reason("cpu") == "JIT-built extension (FASTLIGHT_JIT=1)"
assert ops.grad_stats([torch.tensor([3.0, 4.0])]).tolist() == [25.0, 0.0]
print("  kernels:", ops.backend_reason("cpu"))
EOF
  cat "$TMP/jit.log"
  mv "$TMP"/_C*.so "$PKG/"
fi
say "OK: the wheel installs into a fresh venv, imports with native kernels outside the source tree, lists no build tools"
