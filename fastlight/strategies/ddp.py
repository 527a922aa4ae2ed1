"""DDPStrategy: one process per device, gradients averaged by torch DistributedDataParallel."""
import contextlib
import datetime
import os
from datetime import timedelta
from typing import Any, Dict, Iterator, List, Optional, TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from .environments import ClusterEnvironment, TorchrunEnvironment
from .launchers import MultiProcessingLauncher, SubprocessScriptLauncher
from .strategy import ParallelStrategy
from fastlight.utilities.rank_zero import module_logger

log = module_logger(__name__)
T = TypeVar("T")

DEFAULT_TIMEOUT = timedelta(minutes=30)  # torch's and Lightning's default for collectives
DEFAULT_CONNECT_TIMEOUT = timedelta(seconds=120)  # waiting for the master / for all ranks to join
_START_METHODS = ("popen", "spawn", "fork", "forkserver")


def _connect_timeout_from_env() -> timedelta:
    value = os.environ.get("FASTLIGHT_CONNECT_TIMEOUT")
    if value is None:
        return DEFAULT_CONNECT_TIMEOUT
    try:
        return timedelta(seconds=float(value))
    except ValueError:
        raise ValueError(f"FASTLIGHT_CONNECT_TIMEOUT={value!r} is not a number of seconds") from None


def _reduce_op(reduce_op: Any, backend: str):
    """(torch ReduceOp, divide by world size afterwards?) for a name or a ReduceOp."""
    if not isinstance(reduce_op, str):
        return reduce_op, False
    name = reduce_op.lower()
    if name in ("mean", "avg"):
        # gloo has no AVG: sum then divide (what Lightning does on every backend without AVG).
        return (dist.ReduceOp.SUM, True) if backend != "nccl" else (dist.ReduceOp.AVG, False)
    ops = {"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX, "min": dist.ReduceOp.MIN, "product": dist.ReduceOp.PRODUCT}
    if name not in ops:
        raise ValueError(f"reduce_op={reduce_op!r} is not supported; use one of 'mean', 'sum', 'max', 'min', 'product'")
    return ops[name], False


class DDPStrategy(ParallelStrategy):
    """Multi-process data parallel training on one or more nodes.

    Args:
        find_unused_parameters: passed to DistributedDataParallel (needed when some parameters get no grad).
        start_method: "popen" re-executes the script per local rank (strategy="ddp"); "spawn"/"fork"/"forkserver"
            start the ranks through torch.multiprocessing (strategy="ddp_spawn", "ddp_fork").
        process_group_backend: "gloo" / "nccl"; default gloo on CPU, nccl on CUDA.
        timeout: collective timeout of the process group (a rank stuck longer raises instead of hanging).
        connect_timeout: how long ranks wait for the master and for each other at start-up
            (env FASTLIGHT_CONNECT_TIMEOUT in seconds overrides the default of 120 s).
        sync_batchnorm: convert BatchNorm layers to SyncBatchNorm when the module is set up for training.
        **ddp_kwargs: more DistributedDataParallel arguments (gradient_as_bucket_view defaults to True,
            static_graph to False).
    """

    strategy_name = "ddp"

    def __init__(
        self,
        parallel_devices: Optional[List[torch.device]] = None,
        num_nodes: int = 1,
        cluster_environment: Optional[ClusterEnvironment] = None,
        find_unused_parameters: bool = False,
        start_method: str = "popen",
        process_group_backend: Optional[str] = None,
        timeout: Optional[timedelta] = DEFAULT_TIMEOUT,
        connect_timeout: Optional[timedelta] = None,
        sync_batchnorm: bool = False,
        **ddp_kwargs: Any,
    ) -> None:
        super().__init__()
        if start_method not in _START_METHODS:
            raise ValueError(f"start_method={start_method!r}: expected one of {_START_METHODS}")
        if process_group_backend not in (None, "gloo", "nccl", "mpi", "ucc"):
            raise ValueError(f"process_group_backend={process_group_backend!r}: expected 'gloo' or 'nccl'")
        self.parallel_devices = parallel_devices
        self._num_nodes = num_nodes
        self.cluster_environment = cluster_environment
        self.start_method = start_method
        self._process_group_backend = process_group_backend
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.sync_batchnorm = sync_batchnorm
        self._ddp_kwargs = {"find_unused_parameters": find_unused_parameters, "gradient_as_bucket_view": True}
        self._ddp_kwargs.update(ddp_kwargs)
        self._launcher: Optional[Any] = None
        self._local_rank_override: Optional[int] = None

    # configuration (resolve_strategy fills these in) -------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        return self._num_nodes

    @num_nodes.setter
    def num_nodes(self, value: int) -> None:
        self._num_nodes = value

    @property
    def num_processes(self) -> int:
        return len(self.parallel_devices) if self.parallel_devices else 0

    @property
    def find_unused_parameters(self) -> bool:
        return bool(self._ddp_kwargs.get("find_unused_parameters"))

    @property
    def process_group_backend(self) -> str:
        if self._process_group_backend is not None:
            return self._process_group_backend
        return "nccl" if self.root_device.type == "cuda" else "gloo"

    @property
    def launcher(self) -> Optional[Any]:
        if self._launcher is None:
            self._launcher = self._make_launcher()
        return self._launcher

    def _make_launcher(self) -> Any:
        if self.cluster_environment is None or not self.parallel_devices:
            raise RuntimeError("DDPStrategy is not configured: build it with resolve_strategy(...)")
        if self.start_method == "popen":
            return SubprocessScriptLauncher(self.cluster_environment, self.num_processes, self.num_nodes)
        return MultiProcessingLauncher(self, start_method=self.start_method)

    # ranks -------------------------------------------------------------------------------------------------
    @property
    def local_rank(self) -> int:
        if self._local_rank_override is not None:
            return self._local_rank_override
        return self.cluster_environment.local_rank() if self.cluster_environment is not None else 0

    def _set_local_rank(self, local_rank: int) -> None:
        """Spawned ranks learn their index from the launcher, not from the environment."""
        self._local_rank_override = local_rank
        self._set_world_ranks()

    @property
    def node_rank(self) -> int:
        return self.cluster_environment.node_rank() if self.cluster_environment is not None else 0

    @property
    def global_rank(self) -> int:
        return self.cluster_environment.global_rank() if self.cluster_environment is not None else 0

    @property
    def world_size(self) -> int:
        return self.cluster_environment.world_size() if self.cluster_environment is not None else 1

    @property
    def is_distributed(self) -> bool:
        return True

    @property
    def root_device(self) -> torch.device:
        if not self.parallel_devices:
            raise RuntimeError("DDPStrategy has no devices: build it with resolve_strategy(...)")
        if self.local_rank >= len(self.parallel_devices):
            raise RuntimeError(
                f"LOCAL_RANK={self.local_rank} but this strategy has only {len(self.parallel_devices)} devices per node"
                f" ({self.parallel_devices}); Trainer(devices=...) must match the launcher's processes per node"
            )
        return self.parallel_devices[self.local_rank]

    @property
    def distributed_sampler_kwargs(self) -> Dict[str, int]:
        return {"num_replicas": self.num_nodes * self.num_processes, "rank": self.global_rank}

    def _set_world_ranks(self) -> None:
        from fastlight.utilities import rank_zero

        env = self.cluster_environment
        if env is not None:
            env.set_global_rank(self.node_rank * self.num_processes + self.local_rank)
            env.set_world_size(self.num_nodes * self.num_processes)
        rank_zero._set_rank(self.global_rank)

    # process group -----------------------------------------------------------------------------------------
    def setup_environment(self) -> None:
        """Set the device, derive the ranks, re-seed from PL_GLOBAL_SEED and join the process group."""
        if self.cluster_environment is None:
            raise RuntimeError("DDPStrategy is not configured: build it with resolve_strategy(...)")
        if self.root_device.type == "cuda":
            torch.cuda.set_device(self.root_device)
        self._set_world_ranks()
        _reset_seed()
        if dist.is_available() and dist.is_initialized():
            if dist.get_world_size() != self.world_size:
                raise RuntimeError(
                    f"a process group of size {dist.get_world_size()} already exists, this strategy needs"
                    f" {self.world_size}"
                )
            return
        self._init_process_group()

    def _init_process_group(self) -> None:
        env = self.cluster_environment
        rank, world_size, backend = self.global_rank, self.world_size, self.process_group_backend
        addr, port = env.main_address, env.main_port
        os.environ["MASTER_ADDR"], os.environ["MASTER_PORT"] = addr, str(port)
        kwargs: Dict[str, Any] = {}
        if self.timeout is not None:
            kwargs["timeout"] = self.timeout
        if self.root_device.type == "cuda":
            kwargs["device_id"] = self.root_device
        if isinstance(env, TorchrunEnvironment) and "TORCHELASTIC_RUN_ID" in os.environ:
            # torchrun's agent may already host the store on MASTER_PORT: let torch's env:// handle it.
            dist.init_process_group(backend, init_method="env://", rank=rank, world_size=world_size, **kwargs)
        else:
            store = self._create_store(addr, port, rank, world_size)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world_size, **kwargs)
        # Destroy the group at exit for every backend: a gloo group left alive has its worker threads
        # torn down with the interpreter, which can abort the process ("terminate called without an
        # active exception") after a successful run.
        import atexit
        import sys

        sys.excepthook = _note_uncaught_exception_then(sys.excepthook)
        atexit.register(_destroy_process_group)
        log.info(f"[rank {rank}] joined the process group ({backend}, {world_size} processes, {addr}:{port})")

    def _create_store(self, addr: str, port: int, rank: int, world_size: int) -> "dist.TCPStore":
        connect = self.connect_timeout or _connect_timeout_from_env()
        try:
            store = dist.TCPStore(addr, port, world_size, rank == 0, timeout=connect, wait_for_workers=False)
        except Exception as err:  # torch raises DistNetworkError / DistStoreError / RuntimeError by version
            text = str(err).lower()
            if rank == 0 and ("address already in use" in text or "errno: 98" in text or "eaddrinuse" in text):
                raise RuntimeError(
                    f"MASTER_PORT={port} is already in use on {addr}: another run (or process) holds it. Unset"
                    " MASTER_PORT to let fastlight pick a free port, or set it to a free one."
                ) from err
            if rank != 0:
                raise RuntimeError(
                    f"rank {rank} could not reach the master at MASTER_ADDR={addr} MASTER_PORT={port} within"
                    f" {connect.total_seconds():g} s. Check that the rank-0 process is running there and that the"
                    " address and port are right and reachable (FASTLIGHT_CONNECT_TIMEOUT sets this wait)."
                ) from err
            raise
        # Every rank checks in; rank 0 fails fast when another never arrives (wrong node count, crashed node).
        store.add("fastlight/joined", 1)
        try:
            if rank == 0:
                _wait_joined(store, world_size, connect)
            else:
                store.wait(["fastlight/all_joined"], connect)
        except Exception as err:
            raise RuntimeError(
                f"rank {rank}: not all {world_size} ranks joined at {addr}:{port} within"
                f" {connect.total_seconds():g} s (joined: {_joined_count(store)}). Check devices,"
                " num_nodes and that every node was started."
            ) from err
        if self.timeout is not None:
            store.set_timeout(self.timeout)
        return store

    # module ------------------------------------------------------------------------------------------------
    def setup_module(self, module: nn.Module, training: bool = True) -> nn.Module:
        """Move to root_device; for training convert SyncBatchNorm (if asked) and wrap in DDP.

        Not training (validate/test/predict): no wrapper, parameters and buffers broadcast from rank 0.
        """
        if training and self.sync_batchnorm:
            if self.root_device.type != "cuda":
                raise ValueError(
                    "sync_batchnorm=True needs CUDA devices: torch's SyncBatchNorm does not run on"
                    f" {self.root_device.type}; turn sync_batchnorm off on CPU"
                )
            module = nn.SyncBatchNorm.convert_sync_batchnorm(module)
        module.to(self.root_device)
        self.module = module
        if not training:
            _broadcast_module_states(module)
            self.model = module
            return module
        device_ids = None if self.root_device.type == "cpu" else [self.root_device.index]
        self.model = DistributedDataParallel(module, device_ids=device_ids, **self._ddp_kwargs)
        return self.model

    def _step(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        if self.module is None:
            raise RuntimeError(f"strategy.{method_name} called before strategy.setup_module(module)")
        if self.model is self.module:
            return getattr(self.module, method_name)(*args, **kwargs)
        return _call_through_wrapper(self.model, self.module, method_name, args, kwargs)

    @contextlib.contextmanager
    def block_backward_sync(self, model: Optional[nn.Module] = None) -> Iterator[None]:
        model = model if model is not None else self.model
        if isinstance(model, DistributedDataParallel):
            with model.no_sync():
                yield
        else:
            yield

    def pre_backward(self, loss: torch.Tensor) -> None:
        # Manual optimization: the step ran with grad sync off (see _call_through_wrapper); arm the reducer now.
        if isinstance(self.model, DistributedDataParallel) and not _automatic_optimization(self.module):
            from torch.nn.parallel.distributed import _find_tensors

            model = self.model
            if torch.is_grad_enabled() and model.require_backward_grad_sync:
                model.require_forward_param_sync = True
                # Only with find_unused_parameters does the reducer need the outputs to find unused params.
                outputs = list(_find_tensors(loss)) if model.find_unused_parameters and not model.static_graph else []
                model.reducer._rebuild_buckets()
                model.reducer.prepare_for_backward(outputs)
            else:
                self.model.require_forward_param_sync = False

    # collectives -------------------------------------------------------------------------------------------
    def reduce(self, tensor: Any, group: Optional[Any] = None, reduce_op: Any = "mean") -> Any:
        """All-reduce a tensor over the ranks (returns a new tensor; non-tensors come back unchanged).

        "mean" of an integer tensor truncates, as Lightning's does.
        """
        if not isinstance(tensor, torch.Tensor) or not _initialized():
            return tensor
        op, divide = _reduce_op(reduce_op, dist.get_backend(group))
        result = tensor.clone()
        dist.all_reduce(result, op=op, group=group)
        if divide:
            world = dist.get_world_size(group)
            result = result.div_(world) if result.is_floating_point() else result.copy_(result / world)
        return result

    def all_gather(self, data: Any, group: Optional[Any] = None, sync_grads: bool = False) -> Any:
        """Stack a tensor (or every tensor/number in a dict/list/tuple) from all ranks: shape (world, *shape)."""
        if not _initialized():
            return data
        if isinstance(data, torch.Tensor):
            return _all_gather_tensor(data, group, sync_grads)
        if isinstance(data, (int, float, bool)) and not isinstance(data, torch.Tensor):
            return _all_gather_tensor(torch.tensor(data, device=self.root_device), group, sync_grads)
        if isinstance(data, dict):
            return type(data)({k: self.all_gather(v, group, sync_grads) for k, v in data.items()})
        if isinstance(data, tuple) and hasattr(data, "_fields"):
            return type(data)(*(self.all_gather(v, group, sync_grads) for v in data))
        if isinstance(data, (list, tuple)):
            return type(data)(self.all_gather(v, group, sync_grads) for v in data)
        return data

    def barrier(self, name: Optional[str] = None) -> None:
        if not _initialized():
            return
        if dist.get_backend() == "nccl":
            dist.barrier(device_ids=[self.root_device.index])
        else:
            dist.barrier()

    def broadcast(self, obj: T, src: int = 0) -> T:
        if not _initialized():
            return obj
        holder = [obj]
        dist.broadcast_object_list(holder, src, device=self.root_device if self.root_device.type == "cuda" else None)
        return holder[0]

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        if not _initialized():
            return decision
        total = self.reduce(torch.tensor(int(decision), device=self.root_device), reduce_op="sum")
        return bool(total == self.world_size) if all else bool(total)

    # end ---------------------------------------------------------------------------------------------------
    def on_exception(self, exception: BaseException) -> None:
        if "Expected to have finished reduction in the prior iteration" in str(exception):
            exception.args = (
                f"{exception.args[0] if exception.args else exception}\n\nSome parameters of the module got no"
                " gradient in training_step. If that is intended, use strategy='ddp_find_unused_parameters_true'"
                " (or DDPStrategy(find_unused_parameters=True)).",
            ) + tuple(exception.args[1:])

    def teardown(self) -> None:
        super().teardown()
        if self.cluster_environment is not None:
            self.cluster_environment.teardown()

    def __repr__(self) -> str:
        devices = [str(d) for d in self.parallel_devices or []]
        return (
            f"{type(self).__name__}(devices={devices}, num_nodes={self.num_nodes}, start_method={self.start_method!r},"
            f" environment={type(self.cluster_environment).__name__})"
        )


def _joined_count(store: "dist.TCPStore") -> str:
    try:
        return str(store.add("fastlight/joined", 0))
    except Exception:  # the master itself is gone
        return "unknown"


def _wait_joined(store: "dist.TCPStore", world_size: int, timeout: timedelta) -> None:
    import time

    deadline = time.monotonic() + timeout.total_seconds()
    while store.add("fastlight/joined", 0) < world_size:
        if time.monotonic() > deadline:
            raise TimeoutError("ranks did not join in time")
        time.sleep(0.01)
    store.set("fastlight/all_joined", "1")


def _initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


_uncaught_exception = False


def note_rank_failed() -> None:
    global _uncaught_exception
    _uncaught_exception = True


def _note_uncaught_exception_then(previous_hook):
    """sys.excepthook wrapper: a failing rank must exit at once (the launcher then stops the others), so the
    exit barrier below is skipped after an uncaught exception."""

    def hook(*exc_info):
        note_rank_failed()
        previous_hook(*exc_info)

    return hook


def _destroy_process_group() -> None:
    if not _initialized():
        return
    if dist.get_backend() == "gloo" and not _uncaught_exception:
        # Let every rank finish its last collective before any tears its gloo connections down: a rank that
        # destroys the group while a peer still talks to it can abort that peer at exit. Bounded, so a peer
        # that already died costs seconds, not the collective timeout.
        try:
            dist.monitored_barrier(timeout=datetime.timedelta(seconds=30))
        except Exception:
            pass
    dist.destroy_process_group()


def _reset_seed() -> None:
    """Re-seed every rank from PL_GLOBAL_SEED right before the process group starts (Lightning does this)."""
    from fastlight.utilities.seed import reset_seed

    reset_seed()


def _automatic_optimization(module: Optional[nn.Module]) -> bool:
    return bool(getattr(module, "automatic_optimization", True))


def _call_through_wrapper(wrapper: nn.Module, module: nn.Module, method_name: str, args: tuple, kwargs: dict) -> Any:
    """Run `module.<method_name>(*args)` inside `wrapper.forward`, so DDP sees the step as its forward pass
    (buffer broadcast, reducer prepared for the coming backward)."""
    original_forward = module.forward

    def redirected(*a: Any, **kw: Any) -> Any:
        module.forward = original_forward  # the step may call self(...) itself
        out = getattr(module, method_name)(*a, **kw)
        if isinstance(wrapper, DistributedDataParallel) and not _automatic_optimization(module):
            # Manual optimization: DDP must not prepare the reducer here; pre_backward does it per backward.
            wrapper.require_backward_grad_sync = False
        return out

    module.forward = redirected
    try:
        return wrapper(*args, **kwargs)
    finally:
        module.forward = original_forward
        if isinstance(wrapper, DistributedDataParallel) and not _automatic_optimization(module):
            wrapper.require_backward_grad_sync = True


def _all_gather_tensor(tensor: torch.Tensor, group: Optional[Any], sync_grads: bool) -> torch.Tensor:
    tensor = tensor.contiguous()
    if sync_grads:
        from torch.distributed.nn.functional import all_gather

        return torch.stack(all_gather(tensor, group=group or dist.group.WORLD))
    world = dist.get_world_size(group)
    out = [torch.empty_like(tensor) for _ in range(world)]
    dist.all_gather(out, tensor, group=group)
    return torch.stack(out)


def _broadcast_module_states(module: nn.Module) -> None:
    """Make every rank hold rank 0's parameters and buffers (evaluation without a DDP wrapper)."""
    if not _initialized() or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src=0)
