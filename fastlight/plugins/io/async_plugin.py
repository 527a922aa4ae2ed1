"""AsyncCheckpointIO: checkpoints written in a background thread, so training goes on while the file is written
(`lightning.pytorch.plugins.io.AsyncCheckpointIO`)."""
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, List, Optional

import torch

from .wrapper import _WrappingCheckpointIO


def _clone_tensors(data: Any) -> Any:
    """A copy whose tensors are detached clones: training may change the originals while the thread writes."""
    if isinstance(data, torch.Tensor):
        return data.detach().clone()
    if isinstance(data, dict):
        return type(data)((k, _clone_tensors(v)) for k, v in data.items())
    if isinstance(data, list):
        return [_clone_tensors(v) for v in data]
    if isinstance(data, tuple) and not hasattr(data, "_fields"):
        return tuple(_clone_tensors(v) for v in data)
    return data


class AsyncCheckpointIO(_WrappingCheckpointIO):
    """Wraps a CheckpointIO (default TorchCheckpointIO): `save_checkpoint` snapshots the tensors and returns at once,
    one background thread writes the files in order. An error in the thread is raised at the next save or at the
    end of the run (teardown, which also waits for pending writes)."""

    def __init__(self, checkpoint_io: Optional[Any] = None) -> None:
        super().__init__(checkpoint_io)
        self._executor: Optional[ThreadPoolExecutor] = None
        self._futures: List[Future] = []
        self._error: Optional[BaseException] = None

    def _raise_pending_error(self) -> None:
        done = [f for f in self._futures if f.done()]
        for f in done:
            self._futures.remove(f)
            if f.exception() is not None and self._error is None:
                self._error = f.exception()
        if self._error is not None:
            error, self._error = self._error, None
            raise RuntimeError(f"AsyncCheckpointIO: writing a checkpoint in the background failed: {error}") from error

    def save_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self._raise_pending_error()
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fastlight-ckpt")
        args = tuple(_clone_tensors(a) for a in args)
        kwargs = {k: _clone_tensors(v) for k, v in kwargs.items()}
        self._futures.append(self._executor.submit(self.checkpoint_io.save_checkpoint, *args, **kwargs))

    def remove_checkpoint(self, *args: Any, **kwargs: Any) -> None:
        self._wait()  # a file being written must not be removed under the writer
        super().remove_checkpoint(*args, **kwargs)

    def load_checkpoint(self, *args: Any, **kwargs: Any) -> Any:
        self._wait()
        return super().load_checkpoint(*args, **kwargs)

    def _wait(self) -> None:
        for f in list(self._futures):
            f.exception()  # waits
        self._raise_pending_error()

    def teardown(self) -> None:
        try:
            self._wait()
        finally:
            if self._executor is not None:
                self._executor.shutdown(wait=True)
                self._executor = None
            super().teardown()


__all__ = ["AsyncCheckpointIO"]
