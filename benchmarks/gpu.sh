#!/usr/bin/env bash
# benchmarks/gpu.sh OUTDIR
# For a machine with an NVIDIA GPU and torch already installed, no internet: builds fastlight in place
# against that torch with the CUDA kernels (FASTLIGHT_CUDA=1, only for this GPU's architecture), runs
# the CUDA tests (pytest -m cuda) and the benchmarks with --device cuda, and writes logs and JSON into OUTDIR.
# The benchmark code is fastlight/benchmarks/ (`python -m benchmarks` is `python -m fastlight.benchmarks`).
# Each stage has its own time limit: build 200 s, tests 170 s, kernels 150 s, e2e E2E_TIMEOUT (default 420 s).
# GPU_STAGES picks stages (default "build tests kernels e2e"; build is needed once per machine). The end-to-end
# stage runs E2E_ARGS (default --quick: 30/10 steps, 3 rounds; "" for 60/15 steps, 5 rounds): 4 cases (batch
# 16 and 128, bf16-mixed and 16-mixed) x 5 candidates, and torch.compile compiles once per case (tens of seconds
# each), so it takes about 4-6 minutes; `GPU_STAGES="build e2e"` gives issue 12's numbers alone.
set -uo pipefail
STAGES=" ${GPU_STAGES:-build tests kernels e2e} "
want() { [[ "$STAGES" == *" $1 "* ]]; }
OUTDIR=${1:?usage: benchmarks/gpu.sh OUTDIR}
mkdir -p "$OUTDIR"
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 FASTLIGHT_CUDA=1 MAX_JOBS=${MAX_JOBS:-16}
status=0

{ date -u; git rev-parse --short HEAD 2>/dev/null; nvidia-smi; $PY -c "import torch; print(torch.__version__, torch.version.cuda)"; } \
  > "$OUTDIR/env.txt" 2>&1
cap=$($PY -c "import torch; c=torch.cuda.get_device_capability(); print(f'{c[0]}.{c[1]}')") || { echo "no CUDA device"; exit 1; }
export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$cap}

if want build; then
  echo "== build (arch $TORCH_CUDA_ARCH_LIST)"
  start=$SECONDS
  if ! timeout 200 $PY setup.py build_ext --inplace > "$OUTDIR/build.log" 2>&1; then
    tail -n 40 "$OUTDIR/build.log"; echo "build failed"; exit 1
  fi
  echo "built in $((SECONDS - start)) s"
fi
$PY -c "import fastlight.ops as o; print('backend cuda:', o.backend('cuda'), '-', o.backend_reason('cuda'))" | tee -a "$OUTDIR/env.txt"

if want tests; then
  echo "== tests (-m cuda)"
  start=$SECONDS
  timeout 170 $PY -m pytest -q -rfEs -m cuda tests -p no:cacheprovider --timeout 90 > "$OUTDIR/tests.log" 2>&1 || status=1
  tail -n 30 "$OUTDIR/tests.log"; echo "tests took $((SECONDS - start)) s"
fi

if want kernels; then
  echo "== kernel benchmarks"
  start=$SECONDS
  timeout 150 $PY -m benchmarks --device cuda --only grad_stats --only optim --only amp \
    --json "$OUTDIR/bench.json" > "$OUTDIR/bench.log" 2>&1 || status=1
  cat "$OUTDIR/bench.log"; echo "kernel benchmarks took $((SECONDS - start)) s"
fi

if want e2e; then
  echo "== end to end"
  start=$SECONDS
  timeout ${E2E_TIMEOUT:-420} $PY -m benchmarks --device cuda --only e2e ${E2E_ARGS---quick} --json "$OUTDIR/e2e.json" \
    > "$OUTDIR/e2e.log" 2>&1 || status=1
  cat "$OUTDIR/e2e.log"; echo "e2e took $((SECONDS - start)) s"
fi
exit $status
