"""`python -m fastlight run train.py ARGS`: run an unmodified Lightning script on fastlight.

The import hook (fastlight.alias) makes `pytorch_lightning`, `lightning.pytorch` and `lightning`'s PyTorch names
resolve to fastlight; then the script runs as `__main__` with `sys.argv = ["train.py", *ARGS]`, as `python train.py
ARGS` would run it. `python -m fastlight run -m package.module ARGS` runs a module the same way. Under
strategy="ddp" the extra ranks are started with the same `python -m fastlight run ...` command.
"""
import os
import runpy
import sys
from typing import List, Optional

_USAGE = """usage: python -m fastlight run SCRIPT [ARGS ...]
       python -m fastlight run -m MODULE [ARGS ...]

Runs a PyTorch Lightning script unmodified on fastlight: `pytorch_lightning`, `lightning.pytorch` and
`import lightning as L` (L.Trainer, L.LightningModule ...) resolve to fastlight; lightning.fabric stays the installed one.
"""


def _run(argv: List[str]) -> None:
    import fastlight
    from fastlight.strategies.launchers import subprocess_script

    fastlight.alias()
    # strategy="ddp" re-runs this process's command for each extra local rank: through fastlight as well
    subprocess_script._RERUN_PREFIX = [sys.executable, "-m", "fastlight", "run"]
    if argv[0] == "-m":
        if len(argv) < 2:
            raise SystemExit("python -m fastlight run -m: give the module to run\n\n" + _USAGE)
        module = argv[1]
        sys.argv = [module, *argv[2:]]  # runpy sets argv[0] to the module's file
        sys.path.insert(0, os.getcwd())  # as `python -m` does
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        return
    script = argv[0]
    if not os.path.exists(script):
        raise SystemExit(f"python -m fastlight run: no such script: {script!r}")
    sys.argv = [script, *argv[1:]]
    sys.path.insert(0, os.path.dirname(os.path.abspath(script)))  # as `python script.py` does
    runpy.run_path(script, run_name="__main__")


def main(argv: Optional[List[str]] = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(_USAGE)
        raise SystemExit(0 if argv else 2)
    command, rest = argv[0], argv[1:]
    if command != "run":
        raise SystemExit(f"python -m fastlight: unknown command {command!r}\n\n{_USAGE}")
    if not rest:
        raise SystemExit("python -m fastlight run: give the script to run\n\n" + _USAGE)
    _run(rest)


if __name__ == "__main__":
    main()
