"""Launchers: start the other processes of a run, then call the run function in this one (Lightning's
`strategies.launchers`): `SubprocessScriptLauncher` re-executes the script per extra rank (strategy="ddp"),
`MultiProcessingLauncher` runs the function in new processes (strategy="ddp_spawn"/"ddp_fork")."""
from .launcher import Launcher, _Launcher, set_num_threads_if_needed
from .multiprocessing import MultiProcessingLauncher, _MultiProcessingLauncher
from .subprocess_script import (
    LAUNCHER_PID_ENV,
    SubprocessScriptLauncher,
    _SubprocessScriptLauncher,
    kill_processes,
    watch_launcher_process,
)

__all__ = [
    "Launcher",
    "MultiProcessingLauncher",
    "SubprocessScriptLauncher",
    "_Launcher",
    "_MultiProcessingLauncher",
    "_SubprocessScriptLauncher",
]
