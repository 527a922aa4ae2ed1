#!/usr/bin/env bash
# Sets up what the tests need (idempotent; the main job's set-up plus the `test` extras) and runs the test suite
# in parallel (pytest-xdist: FASTLIGHT_TEST_WORKERS workers, default auto = one per core).
#
# Two tiers. By default the tests marked `slow` are left out: they start processes (2-rank DDP runs, runs killed
# with SIGKILL and resumed, fresh interpreters behind `python -m fastlight run`) and take most of the time.
# `--all` as the first argument runs every test (CI runs both tiers; the multi-process tests then run one at a time
# on one worker, see tests/conftest.py). Other arguments go to pytest (e.g. tests/test_loggers.py -x; `-n 0` runs
# in one process; `bash scripts/test.sh --all tests/test_ddp_trainer.py` runs a slow file).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh test
tier=(-m "not slow")
if [ "${1:-}" = "--all" ]; then
  shift
  tier=()
else
  echo "test: the fast tier (tests marked slow are left out; bash scripts/test.sh --all runs every test)"
fi
exec .venv/bin/python -m pytest -q -n "${FASTLIGHT_TEST_WORKERS:-auto}" --dist loadgroup ${tier[@]+"${tier[@]}"} "$@"
