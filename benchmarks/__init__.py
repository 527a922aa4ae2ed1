"""fastlight benchmarks: `python -m benchmarks [--quick] [--device cpu|cuda] [--only NAME] [--json FILE]`.

Each benchmarks/bench_<name>.py exposes `run(quick: bool, device: str) -> list[dict]`, one dict per
(case, candidate) with keys name, candidate, median_ms, ratio (candidate time / baseline time of the same
case; < 1 is faster) and, for memory-bound work, gbps and pct_of_bw against the bandwidth measured in the
same run. Timing helpers live in benchmarks/harness.py.
"""
