#!/usr/bin/env bash
# benchmarks/gpu.sh OUTDIR
# For a machine with an NVIDIA GPU and torch already installed, no internet: builds fastlight in place
# against that torch with the CUDA kernels (FASTLIGHT_CUDA=1, only for this GPU's architecture), runs
# the CUDA-relevant tests and the benchmarks with --device cuda, and writes logs and JSON into OUTDIR.
# Stays within about 8 minutes on an H100; each stage has its own time limit.
set -uo pipefail
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

echo "== build (arch $TORCH_CUDA_ARCH_LIST)"
if ! timeout 300 $PY setup.py build_ext --inplace > "$OUTDIR/build.log" 2>&1; then
  tail -n 40 "$OUTDIR/build.log"; echo "build failed"; exit 1
fi
$PY -c "import fastlight.ops as o; print('backend cuda:', o.backend('cuda'), '-', o.backend_reason('cuda'))" | tee -a "$OUTDIR/env.txt"

echo "== tests"
timeout 180 $PY -m pytest -q -x tests -k "cuda or ops or optim or amp or grad_stats" -p no:cacheprovider \
  > "$OUTDIR/tests.log" 2>&1 || status=1
tail -n 15 "$OUTDIR/tests.log"

echo "== benchmarks"
# The kernel and end-to-end benchmarks; the loop-overhead ones are CPU microbenchmarks.
timeout 300 $PY -m benchmarks --device cuda --only grad_stats --only optim --only amp --only e2e \
  --json "$OUTDIR/bench.json" > "$OUTDIR/bench.log" 2>&1 || status=1
cat "$OUTDIR/bench.log"
exit $status
