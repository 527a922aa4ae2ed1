"""`MultiProcessingLauncher` (strategy="ddp_spawn"/"ddp_fork"; Lightning's `_MultiProcessingLauncher`): runs the
function in N fresh processes through torch.multiprocessing and returns rank 0's return value to the calling
process."""
import os
import signal
from typing import TYPE_CHECKING, Any, Callable

import torch

from .launcher import Launcher, set_num_threads_if_needed

if TYPE_CHECKING:
    from ..ddp import DDPStrategy


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
        from ..ddp import note_rank_failed

        note_rank_failed()
        raise


def _check_main_guard() -> None:
    import multiprocessing

    if getattr(multiprocessing.current_process(), "_inheriting", False):
        raise RuntimeError(
            "strategy='ddp_spawn' started processes while the script's module-level code was being imported by a"
            " child: put the code that creates and runs the Trainer under `if __name__ == '__main__':`."
        )


class MultiProcessingLauncher(Launcher):
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

    def launch(self, function: Callable, *args: Any, trainer: Any = None, **kwargs: Any) -> Any:
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


_MultiProcessingLauncher = MultiProcessingLauncher  # Lightning's name
