"""`SubprocessScriptLauncher` (strategy="ddp" from a plain script; Lightning's `_SubprocessScriptLauncher`).

It re-executes the same command line once per extra local rank with LOCAL_RANK, NODE_RANK, WORLD_SIZE, MASTER_ADDR
and MASTER_PORT set, so module-level code runs in every rank (Lightning's behaviour). When the environment already
created the processes (torchrun, SLURM, or our own children) `launch` only calls the function.

Failure handling: a watcher thread in the launching process polls the children; when one exits non-zero it
kills the others and ends the launching process with that exit code (the child printed its own traceback).
An unhandled exception in the launching process (rank 0) kills the children too, and every child kills
itself if the launching process disappears, so no rank is left hanging in a collective.
"""
import atexit
import os
import signal
import subprocess
import sys
import threading
import time
from typing import Any, Callable, List, Optional, Sequence

from .launcher import Launcher, set_num_threads_if_needed

# Set in children started by SubprocessScriptLauncher: the pid they must outlive-check.
LAUNCHER_PID_ENV = "FASTLIGHT_LAUNCHER_PID"
_POLL_S = 0.2
_watching = False  # one launcher-watch thread per process, however many fits the script runs

def _rank_message(rank: int, message: str) -> str:
    return f"[fastlight rank {rank}] {message}"

_RERUN_PREFIX: Optional[List[str]] = None


def _rerun_command() -> List[str]:
    """The command that started this process: `python script.py args` or `python -m pkg.mod args` (behind
    _RERUN_PREFIX instead of `python` when that is set)."""
    import __main__

    if _RERUN_PREFIX is not None:
        spec = getattr(__main__, "__spec__", None)
        if spec is not None:
            return [*_RERUN_PREFIX, "-m", spec.name] + sys.argv[1:]
        return [*_RERUN_PREFIX, os.path.abspath(sys.argv[0])] + sys.argv[1:]

    spec = getattr(__main__, "__spec__", None)
    if spec is None:
        main_file = getattr(__main__, "__file__", None)
        if main_file is None or not sys.argv or sys.argv[0] in ("", "-c"):
            raise RuntimeError(
                "strategy='ddp' re-executes the running script for each extra rank, but this process was not"
                " started from a script file (interactive session or `python -c`). Use strategy='ddp_spawn' or"
                " 'ddp_fork' here, or launch with torchrun."
            )
        return [sys.executable, os.path.abspath(sys.argv[0])] + sys.argv[1:]
    return [sys.executable, "-m", spec.name] + sys.argv[1:]


class _ChildObserver(threading.Thread):
    """Polls the children; when one fails, kills the rest and this process, with the failing code."""

    def __init__(self, procs: List[subprocess.Popen], first_child_rank: int) -> None:
        super().__init__(daemon=True, name="fastlight-child-observer")
        self.procs = procs
        self.first_child_rank = first_child_rank
        self.finished = threading.Event()

    def run(self) -> None:
        while not self.finished.is_set():
            codes = [p.poll() for p in self.procs]
            for i, code in enumerate(codes):
                if code:  # non-zero, or negative when killed by a signal
                    rank = self.first_child_rank + i
                    sys.stderr.write(
                        _rank_message(
                            rank,
                            f"process {self.procs[i].pid} exited with code {code}; stopping all other ranks.\n",
                        )
                    )
                    sys.stderr.flush()
                    kill_processes(self.procs)
                    # The main thread may be blocked inside a collective: leave the process from here.
                    os._exit(code if code > 0 else 1)
            if all(c == 0 for c in codes):
                return
            time.sleep(_POLL_S)


def kill_processes(procs: Sequence[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            try:
                p.kill()  # SIGTERM may not stop a process stuck in a collective
            except ProcessLookupError:
                pass
    for p in procs:
        try:
            p.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def watch_launcher_process() -> None:
    """In a re-executed child: exit if the launching process dies (it can no longer be waited on)."""
    global _watching
    pid_str = os.environ.get(LAUNCHER_PID_ENV)
    if not pid_str or _watching:
        return
    launcher_pid = int(pid_str)
    if os.getppid() != launcher_pid:
        return  # not our direct parent (e.g. a grandchild process): nothing reliable to watch

    def watch() -> None:
        while True:
            time.sleep(_POLL_S)
            if os.getppid() != launcher_pid:  # re-parented: the launcher is gone
                sys.stderr.write(
                    _rank_message(
                        int(os.environ.get("LOCAL_RANK", -1)),
                        f"the launching process {launcher_pid} exited; stopping this rank.\n",
                    )
                )
                sys.stderr.flush()
                os._exit(1)

    threading.Thread(target=watch, daemon=True, name="fastlight-launcher-watch").start()
    _watching = True


class SubprocessScriptLauncher(Launcher):
    """Re-run the script for local ranks 1..N-1 (strategy='ddp' from a plain script)."""

    is_interactive_compatible = False

    def __init__(self, cluster_environment, num_processes: int, num_nodes: int) -> None:
        self.cluster_environment = cluster_environment
        self.num_processes = num_processes
        self.num_nodes = num_nodes
        self.procs: List[subprocess.Popen] = []
        self._observer: Optional[_ChildObserver] = None

    @property
    def launches_processes(self) -> bool:
        """False when torchrun/SLURM/our own re-exec already created this rank: launch() only calls."""
        return not self.cluster_environment.creates_processes_externally

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
        self.cluster_environment.validate_settings(num_devices=self.num_processes, num_nodes=self.num_nodes)
        if self.launches_processes:
            self._start_children()
        elif os.environ.get(LAUNCHER_PID_ENV):
            watch_launcher_process()
        set_num_threads_if_needed(self.num_processes)
        return function(*args, **kwargs)

    def _start_children(self) -> None:
        if self.procs:
            raise RuntimeError("SubprocessScriptLauncher.launch: the child processes were already started")
        env = self.cluster_environment
        if env.local_rank() != 0:
            raise RuntimeError(f"only local rank 0 launches the other ranks, this is LOCAL_RANK={env.local_rank()}")
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        os.environ["NODE_RANK"] = str(env.node_rank())
        os.environ["LOCAL_RANK"] = "0"
        os.environ["WORLD_SIZE"] = str(self.num_processes * self.num_nodes)
        command = _rerun_command()
        for local_rank in range(1, self.num_processes):
            child_env = os.environ.copy()
            child_env["LOCAL_RANK"] = str(local_rank)
            child_env[LAUNCHER_PID_ENV] = str(os.getpid())
            self.procs.append(subprocess.Popen(command, env=child_env))
        first_child_rank = env.node_rank() * self.num_processes + 1
        self._observer = _ChildObserver(self.procs, first_child_rank)
        self._observer.start()
        _install_exit_handlers(self)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Stop every child (the Trainer calls this when this rank fails and will not reach the next collective)."""
        if self._observer is not None:
            self._observer.finished.set()
        for p in self.procs:
            if p.poll() is None:
                try:
                    p.send_signal(signum)
                except ProcessLookupError:
                    pass

    def wait(self, timeout: Optional[float] = None) -> None:
        """Wait for the children to finish; a failure among them is handled by the observer."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for p in self.procs:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            try:
                p.wait(timeout=remaining)
            except subprocess.TimeoutExpired:
                return


def _install_exit_handlers(launcher: SubprocessScriptLauncher) -> None:
    """Rank 0 dying with an exception kills the children; a normal exit waits for them to finish."""
    previous_hook = sys.excepthook

    def excepthook(exc_type, exc, tb):  # type: ignore[no-untyped-def]
        if launcher._observer is not None:
            launcher._observer.finished.set()  # from here on this hook reports, not the observer
        previous_hook(exc_type, exc, tb)
        # A peer that crashed makes this rank fail too ("Connection closed by peer"): name the first culprit.
        deadline = time.monotonic() + 1.0
        failed = []
        while not failed and time.monotonic() < deadline:
            failed = [(i, p.poll()) for i, p in enumerate(launcher.procs) if p.poll()]
            if not failed:
                time.sleep(0.05)
        rank0 = launcher.cluster_environment.node_rank() * launcher.num_processes
        for i, code in failed:
            sys.stderr.write(
                _rank_message(rank0 + 1 + i, f"had already exited with code {code}: its error (above) came first.\n")
            )
        sys.stderr.write(_rank_message(rank0, f"{exc_type.__name__} raised; stopping all other ranks.\n"))
        sys.stderr.flush()
        launcher.kill()

    sys.excepthook = excepthook

    def at_exit() -> None:
        # Children run the same script: wait so the shell gets its prompt back only when the whole run is done.
        launcher.wait()
        if launcher._observer is not None:
            launcher._observer.join(timeout=2 * _POLL_S + 1)

    atexit.register(at_exit)


_SubprocessScriptLauncher = SubprocessScriptLauncher  # Lightning's name
