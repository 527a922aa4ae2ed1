"""Launchers: start the other processes of a run, then call the run function in this one.

`SubprocessScriptLauncher` (strategy="ddp" from a plain script) re-executes the same command line once per
extra local rank with LOCAL_RANK, NODE_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT set, so module-level
code runs in every rank (Lightning's behaviour). When the environment already created the processes
(torchrun, SLURM, or our own children) `launch` only calls the function.

`MultiProcessingLauncher` (strategy="ddp_spawn"/"ddp_fork") runs the function in N fresh processes through
torch.multiprocessing and returns rank 0's return value to the calling process.

Failure handling: a watcher thread in the launching process polls the children; when one exits non-zero it
kills the others and ends the launching process with that exit code (the child printed its own traceback).
An unhandled exception in the launching process (rank 0) kills the children too, and every child kills
itself if the launching process disappears, so no rank is left hanging in a collective.
"""
import atexit
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from typing import TYPE_CHECKING, Any, Callable, List, Optional, Sequence

import torch

if TYPE_CHECKING:
    from .ddp import DDPStrategy

log = logging.getLogger("fastlight")

# Set in children started by SubprocessScriptLauncher: the pid they must outlive-check.
LAUNCHER_PID_ENV = "FASTLIGHT_LAUNCHER_PID"
_POLL_S = 0.2
_watching = False  # one launcher-watch thread per process, however many fits the script runs


def _rank_message(rank: int, message: str) -> str:
    return f"[fastlight rank {rank}] {message}"


def set_num_threads_if_needed(num_processes: int) -> None:
    """N processes on one host share its cores: give each its share unless the user chose (OMP_NUM_THREADS)."""
    if "OMP_NUM_THREADS" in os.environ or num_processes <= 1:
        return
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    threads = max(1, cpus // num_processes)
    torch.set_num_threads(threads)
    os.environ["OMP_NUM_THREADS"] = str(threads)


# The command prefix that runs a script or module the way this process was started, when that was not plain
# `python`: `python -m fastlight run` (fastlight/__main__.py) sets it so the extra ranks get its import hook too.
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


class SubprocessScriptLauncher:
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

    def launch(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
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


class _SpawnWorker:
    """Picklable entry point of a spawned rank (start method 'spawn' pickles it with the strategy)."""

    def __init__(self, strategy: "DDPStrategy", function: Callable, args: tuple, kwargs: dict,
                 unshare_modules: bool = False) -> None:
        self.strategy = strategy
        self.function = function
        self.args = args
        self.kwargs = kwargs
        self.unshare_modules = unshare_modules

    def __call__(self, process_idx: int, return_queue: Any) -> None:
        if self.unshare_modules:
            _unshare_module_memory((self.args, self.kwargs))
        os.environ["LOCAL_RANK"] = str(process_idx)
        set_num_threads_if_needed(self.strategy.num_processes)
        self.strategy._set_local_rank(process_idx)
        result = self.function(*self.args, **self.kwargs)
        if self.strategy.global_rank == 0:
            # Bytes, not tensors: avoids shared-memory file descriptors outliving the worker.
            import io

            buffer = io.BytesIO()
            torch.save(_to_cpu(result), buffer)
            return_queue.put(buffer.getvalue())


def _unshare_module_memory(data: Any) -> None:
    """torch.multiprocessing hands CPU tensors to spawned processes in shared memory: every rank would then step
    the same parameters (N updates per step). Give each rank's modules their own parameters and buffers."""
    if isinstance(data, torch.nn.Module):
        with torch.no_grad():
            for tensor in list(data.parameters()) + list(data.buffers()):
                tensor.data = tensor.data.clone()
    elif isinstance(data, dict):
        for value in data.values():
            _unshare_module_memory(value)
    elif isinstance(data, (list, tuple)):
        for value in data:
            _unshare_module_memory(value)


def _to_cpu(obj: Any) -> Any:
    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if type(obj) is dict:
        return {k: _to_cpu(v) for k, v in obj.items()}
    if type(obj) in (list, tuple):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


def _run_worker(process_idx: int, worker: _SpawnWorker, return_queue: Any) -> None:
    try:
        worker(process_idx, return_queue)
    except BaseException:
        # torch.multiprocessing reports the exception itself (no sys.excepthook): mark the rank as failed so
        # its exit skips the process group's exit barrier and it ends at once.
        from .ddp import note_rank_failed

        note_rank_failed()
        raise


def _check_main_guard() -> None:
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "strategy='ddp_spawn' started processes while the script's module-level code was being imported by a"
            " child: put the code that creates and runs the Trainer under `if __name__ == '__main__':`."
        )


class MultiProcessingLauncher:
    """Run the function in `num_processes` new processes (torch.multiprocessing); return rank 0's result."""

    def __init__(self, strategy: "DDPStrategy", start_method: str = "spawn") -> None:
        if start_method not in torch.multiprocessing.get_all_start_methods():
            raise ValueError(
                f"start method {start_method!r} is not available on this platform"
                f" (available: {torch.multiprocessing.get_all_start_methods()})"
            )
        self.strategy = strategy
        self.start_method = start_method

    is_interactive_compatible = property(lambda self: self.start_method == "fork")
    launches_processes = True

    def launch(self, function: Callable, *args: Any, **kwargs: Any) -> Any:
        """Run `function(*args, **kwargs)` in every rank; returns rank 0's return value (tensors moved to CPU).

        An exception in any rank ends all of them and is re-raised here as
        torch.multiprocessing.ProcessRaisedException carrying the failing rank's traceback.
        """
        if self.start_method == "spawn":
            _check_main_guard()
        if self.start_method == "fork" and torch.cuda.is_initialized():
            raise RuntimeError(
                "strategy='ddp_fork' cannot be used after CUDA was initialized in this process; use 'ddp_spawn'"
            )
        env = self.strategy.cluster_environment
        self.strategy.cluster_environment.validate_settings(self.strategy.num_processes, self.strategy.num_nodes)
        os.environ["MASTER_ADDR"] = env.main_address
        os.environ["MASTER_PORT"] = str(env.main_port)
        context = torch.multiprocessing.get_context(self.start_method)
        return_queue = context.SimpleQueue()
        # forked ranks get copy-on-write memory; spawned ones receive the modules in shared memory
        worker = _SpawnWorker(self.strategy, function, args, kwargs, unshare_modules=self.start_method != "fork")
        context = torch.multiprocessing.start_processes(
            _run_worker,
            args=(worker, return_queue),
            nprocs=self.strategy.num_processes,
            join=False,
            start_method=self.start_method,
        )
        # join() raises with the first failing rank's traceback after terminating the others. The result is
        # read while waiting: a payload larger than the pipe buffer would otherwise block rank 0 forever.
        payload = None
        while True:
            if payload is None and not return_queue.empty():
                payload = return_queue.get()
            if context.join(timeout=0.05):
                break
        if payload is None and not return_queue.empty():
            payload = return_queue.get()
        if payload is None:
            return None
        import io

        return torch.load(io.BytesIO(payload), weights_only=False)

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """Nothing to do: start_processes already ends every rank when one fails."""
