#!/usr/bin/env bash
# Idempotent set-up of everything fastlight needs, in ./.venv:
#   torch + torchvision, the build tools, fastlight itself (editable, native extension built in place)
#   and the test extras. A second run with nothing changed takes about a second.
# Environment: PYTHON (interpreter for the venv; default python3.11, else python3),
#   FASTLIGHT_TORCH_SPEC (default "torch==2.14.1 torchvision==0.29.1"), FASTLIGHT_CUDA (auto|0|1).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${FASTLIGHT_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
VENV=.venv
STAMP=$VENV/.fastlight-setup

if [ ! -x "$VENV/bin/python" ]; then
  echo "setup: creating $VENV with $PY"
  "$PY" -m venv "$VENV"
fi
VPY=$VENV/bin/python

# Everything that changes what gets installed or built; the stamp records its hash.
inputs_hash() {
  { echo "$TORCH_SPEC ${FASTLIGHT_CUDA:-auto}"; cat pyproject.toml setup.py fastlight/_build.py;
    find csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' \) | sort | xargs cat; } \
    | sha256sum | cut -d' ' -f1
}
want=$(inputs_hash)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && ls fastlight/_C*.so >/dev/null 2>&1 \
   && "$VPY" -c "import torch, fastlight" >/dev/null 2>&1; then
  exit 0
fi

LOG=$VENV/setup.log
: > "$LOG"
step() {  # run quietly into the log; on failure show its end and stop
  if ! "$@" >>"$LOG" 2>&1; then
    echo "setup: FAILED: $*" >&2; tail -n 40 "$LOG" >&2; echo "setup: full log in $LOG" >&2; exit 1
  fi
}
PIP=("$VPY" -m pip install --disable-pip-version-check)
echo "setup: installing torch and build tools (log: $LOG)"
step "${PIP[@]}" --upgrade pip "setuptools>=64" wheel ninja
# shellcheck disable=SC2086
step "${PIP[@]}" $TORCH_SPEC
echo "setup: building fastlight (native extension) and installing test extras"
# --no-build-isolation: compile against the torch just installed instead of downloading another one.
export MAX_JOBS=${MAX_JOBS:-2}
step "${PIP[@]}" --no-build-isolation -e ".[test]"
# Build the .so in place too, so that the checkout itself imports it (tests, examples, benchmarks).
step "$VPY" setup.py build_ext --inplace
"$VPY" -c "import fastlight.ops as o; print('setup: fastlight kernels:', 'cpu', o.backend('cpu'), '| cuda', o.backend('cuda'))"
echo "$want" > "$STAMP"
