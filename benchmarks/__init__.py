"""The repository's entry point to fastlight's benchmark suite, which ships in the package (fastlight/benchmarks/):
`python -m benchmarks ...` is `python -m fastlight.benchmarks ...` (see BENCHMARKS.md, "How to run")."""
