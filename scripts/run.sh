#!/usr/bin/env bash
# Sets up what the main job needs (idempotent; no test extras) and runs it: the CIFAR-10 example, briefly.
# Offline it trains on an embedded CIFAR-shaped stand-in; pass --data-dir DIR for the real data set.
# Extra arguments go to examples/cifar10.py (e.g. --max-epochs 10 --limit-batches 0).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh main
exec .venv/bin/python examples/cifar10.py --max-epochs 1 --limit-batches 20 "$@"
