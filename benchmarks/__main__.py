"""`python -m benchmarks [--quick] [--device cpu|cuda] [--only NAME] [--json FILE]` or `--model MODULE:CLASS ...`:
the same code and options as `python -m fastlight.benchmarks` (fastlight/benchmarks/cli.py)."""
import sys

from fastlight.benchmarks.cli import main

sys.exit(main(prog="python -m benchmarks"))
