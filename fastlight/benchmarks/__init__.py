"""fastlight's benchmark suite, shipped with the package.

    python -m fastlight.benchmarks [--quick] [--device cpu|cuda] [--only NAME] [--json FILE]
    python -m fastlight.benchmarks --model pkg.module:LitModel [--datamodule pkg.module:DM] [--batch-size N]
                                   [--precision P] [--steps N] [--device D] [--json FILE] [--png FILE]

Each fastlight/benchmarks/bench_<name>.py exposes `run(quick: bool, device: str) -> list[dict]`, one dict per
(case, candidate) with keys name (the case), candidate, median_ms, ratio (candidate time / the case's baseline
time; below 1 is faster) and, for memory-bound work, gbps and pct_of_bw against a reference stream timed in the
same rounds; it raises harness.Skip(reason) when it cannot run here, and names its table's COLUMNS and NOTES
(what each column and percentage means). Timing helpers live in harness.py; the user-model runner in
user_model.py (loading.py imports the user's class for each framework, compare.py holds the runners).
Nothing else in fastlight imports this package.
"""
