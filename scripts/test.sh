#!/usr/bin/env bash
# Sets up what the tests need (idempotent; the main job's set-up plus the `test` extras) and runs the test suite
# in parallel (pytest-xdist: FASTLIGHT_TEST_WORKERS workers, default auto = one per core; the tests that start
# several processes run one at a time on one worker, see tests/conftest.py).
# Extra arguments go to pytest (e.g. tests/test_loggers.py -x; `-n 0` runs in one process).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh test
exec .venv/bin/python -m pytest -q -n "${FASTLIGHT_TEST_WORKERS:-auto}" --dist loadgroup "$@"
