#!/usr/bin/env bash
# Idempotent set-up in ./.venv of what a job needs. `bash scripts/setup.sh` (the main job, scripts/run.sh):
# torch + torchvision, fastlight itself (editable, dependencies from pyproject.toml) and its native extension built
# in place. `bash scripts/setup.sh test` (scripts/test.sh) adds the test extras (`.[test]`).
# The CUDA kernels are built only when a GPU is visible or FASTLIGHT_CUDA=1 (setup.py decides).
# Each step prints its name and elapsed seconds; the output of every command goes to .venv/setup.log.
# A second run with nothing changed checks one hash and exits (well under a second).
# Environment: PYTHON (interpreter for the venv; default python3.11, else python3),
#   FASTLIGHT_TORCH_SPEC (default "torch==2.14.1 torchvision==0.29.1"), FASTLIGHT_CUDA (auto|0|1), MAX_JOBS.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

TARGET=${1:-main}
case "$TARGET" in main | test) ;; *) echo "setup: unknown target '$TARGET' (main or test)" >&2; exit 2 ;; esac
PY=${PYTHON:-$(command -v python3.11 || command -v python3)}
TORCH_SPEC=${FASTLIGHT_TORCH_SPEC:-"torch==2.14.1 torchvision==0.29.1"}
VENV=.venv
VPY=$VENV/bin/python
STAMP=$VENV/.fastlight-setup-$TARGET

# Everything that changes what gets installed or built; the stamp records its hash.
inputs_hash() {
  { echo "$TARGET $TORCH_SPEC ${FASTLIGHT_CUDA:-auto} ${TORCH_CUDA_ARCH_LIST:-}"; cat pyproject.toml setup.py fastlight/_build.py;
    find csrc -type f \( -name '*.cpp' -o -name '*.cu' -o -name '*.h' -o -name '*.cuh' -o -name '*.inc' \) | sort | xargs cat; } \
    | sha256sum | cut -d' ' -f1
}
want=$(inputs_hash)
if [ -x "$VPY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && ls fastlight/_C*.so >/dev/null 2>&1; then
  exit 0
fi

T0=$SECONDS
mkdir -p "$VENV"
LOG=$VENV/setup.log
: > "$LOG"
echo "setup ($TARGET): log in $LOG"
# step NAME CMD...: runs CMD into the log, printing NAME, a heartbeat every 20 s, and the seconds it took.
step() {
  local name=$1 s=$SECONDS; shift
  echo "setup [$((SECONDS - T0)) s]: $name ..."
  echo "=== $name: $*" >> "$LOG"
  "$@" >> "$LOG" 2>&1 &
  local pid=$! rc=0
  while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if (( (SECONDS - s) % 20 == 0 )) && kill -0 "$pid" 2>/dev/null; then
      echo "setup [$((SECONDS - T0)) s]:   still $name ($((SECONDS - s)) s; tail -f $LOG)"
    fi
  done
  wait "$pid" || rc=$?
  if [ "$rc" -ne 0 ]; then
    echo "setup: FAILED ($name, exit $rc): $*" >&2; tail -n 40 "$LOG" >&2; echo "setup: full log in $LOG" >&2; exit 1
  fi
  echo "setup [$((SECONDS - T0)) s]: $name done ($((SECONDS - s)) s)"
}

[ -x "$VPY" ] || step "creating $VENV with $PY" "$PY" -m venv "$VENV"
# --no-compile: no .pyc for torch's thousands of files up front (Python writes them on first import).
PIP=("$VPY" -m pip install --disable-pip-version-check --no-compile)
step "installing build tools" "${PIP[@]}" --upgrade "setuptools>=77" wheel ninja
# shellcheck disable=SC2086
step "installing $TORCH_SPEC" "${PIP[@]}" $TORCH_SPEC
extras=""
[ "$TARGET" = test ] && extras="[test]"
# Editable, without compiling (FASTLIGHT_NO_EXTENSION=1): the dependencies and the import path. The extension is
# then built once, in place, with a kept build folder so that a change to one kernel recompiles only that file.
# --no-build-isolation: compile against the torch just installed instead of downloading another one.
step "installing fastlight${extras} (editable)" env FASTLIGHT_NO_EXTENSION=1 "${PIP[@]}" --no-build-isolation -e ".$extras"
step "building the native extension (MAX_JOBS=${MAX_JOBS:-2})" env MAX_JOBS="${MAX_JOBS:-2}" "$VPY" setup.py build_ext --inplace
echo "setup [$((SECONDS - T0)) s]: $(grep -h '^fastlight: ' "$LOG" | sort -u | tr '\n' ' ')"
"$VPY" -c "import fastlight.ops as o; print('setup: fastlight kernels: cpu', o.backend('cpu'), '| cuda', o.backend('cuda'))"
echo "$want" > "$STAMP"
echo "setup [$((SECONDS - T0)) s]: done"
