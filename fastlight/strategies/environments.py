"""Where the processes of a run come from, and how they find each other.

One class per kind of launch. Each answers: who creates the processes (us or someone else), the address
and port of the rank-0 process, and this process's global rank, local rank, node rank and world size.

- `LocalEnvironment`: a plain `python train.py` (fastlight launches the other local ranks), or any
  launcher that only sets LOCAL_RANK (and NODE_RANK, MASTER_ADDR, MASTER_PORT) such as fastlight's own
  re-exec launcher; ranks are derived from the Trainer's devices and num_nodes as Lightning does.
- `TorchrunEnvironment`: torchrun / torch.distributed.run, or any launcher that sets all of RANK,
  LOCAL_RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT: ranks are read from those variables.
- `SLURMEnvironment`: processes started by `srun`: SLURM_PROCID, SLURM_LOCALID, SLURM_NODEID,
  SLURM_NTASKS, the master address being the first host of SLURM_NODELIST.
"""
import os
import signal
import re
import socket
from typing import Optional
from fastlight.utilities.rank_zero import module_logger

log = module_logger(__name__)

_TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def find_free_port() -> int:
    """A TCP port that is free on this host right now (STANDALONE_PORT wins, as in Lightning)."""
    if "STANDALONE_PORT" in os.environ:
        return int(os.environ["STANDALONE_PORT"])
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _env_int(key: str, default: Optional[int] = None) -> int:
    value = os.environ.get(key)
    if value is None:
        if default is None:
            raise RuntimeError(f"environment variable {key} is not set")
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"environment variable {key}={value!r} is not an integer") from None


class ClusterEnvironment:
    """Base: subclasses say who creates processes and where ranks come from."""

    name = "base"

    @property
    def creates_processes_externally(self) -> bool:
        raise NotImplementedError

    @property
    def main_address(self) -> str:
        raise NotImplementedError

    @property
    def main_port(self) -> int:
        raise NotImplementedError

    def global_rank(self) -> int:
        raise NotImplementedError

    def set_global_rank(self, rank: int) -> None:
        """Only environments that derive ranks from the Trainer's flags accept this."""

    def world_size(self) -> int:
        raise NotImplementedError

    def set_world_size(self, size: int) -> None:
        """Only environments that derive ranks from the Trainer's flags accept this."""

    def local_rank(self) -> int:
        raise NotImplementedError

    def node_rank(self) -> int:
        raise NotImplementedError

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        """Raise if the Trainer's devices/num_nodes disagree with what the launcher started."""

    def teardown(self) -> None:
        pass

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class LocalEnvironment(ClusterEnvironment):
    """Plain script (we launch), or a launcher that sets LOCAL_RANK only (we join).

    Global rank and world size come from the strategy (node_rank * devices + local_rank,
    num_nodes * devices), like Lightning's LightningEnvironment.
    """

    name = "local"

    def __init__(self) -> None:
        self._main_port = -1
        self._global_rank = 0
        self._world_size = 1

    @property
    def creates_processes_externally(self) -> bool:
        return "LOCAL_RANK" in os.environ

    @property
    def main_address(self) -> str:
        return os.environ.get("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        # Picked once: every later read (the env var set for children, init_process_group) must agree.
        if self._main_port == -1:
            self._main_port = _env_int("MASTER_PORT") if "MASTER_PORT" in os.environ else find_free_port()
        return self._main_port

    def global_rank(self) -> int:
        return self._global_rank

    def set_global_rank(self, rank: int) -> None:
        self._global_rank = rank

    def world_size(self) -> int:
        return self._world_size

    def set_world_size(self, size: int) -> None:
        self._world_size = size

    def local_rank(self) -> int:
        return _env_int("LOCAL_RANK", 0)

    def node_rank(self) -> int:
        return _env_int("NODE_RANK", _env_int("GROUP_RANK", 0))

    def teardown(self) -> None:
        # A later single-process Trainer in the same script must not believe it is distributed.
        os.environ.pop("WORLD_SIZE", None)


class TorchrunEnvironment(ClusterEnvironment):
    """torchrun (TORCHELASTIC_RUN_ID) or any launcher setting RANK, LOCAL_RANK, WORLD_SIZE, MASTER_*."""

    name = "torchrun"

    @staticmethod
    def detect() -> bool:
        if "TORCHELASTIC_RUN_ID" in os.environ:
            return True
        return all(k in os.environ for k in _TORCHRUN_VARS)

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        return os.environ.setdefault("MASTER_ADDR", "127.0.0.1")

    @property
    def main_port(self) -> int:
        if "MASTER_PORT" not in os.environ:
            raise RuntimeError("the launcher set RANK/WORLD_SIZE but not MASTER_PORT; set MASTER_PORT")
        return _env_int("MASTER_PORT")

    def global_rank(self) -> int:
        return _env_int("RANK")

    def world_size(self) -> int:
        return _env_int("WORLD_SIZE")

    def local_rank(self) -> int:
        return _env_int("LOCAL_RANK")

    def node_rank(self) -> int:
        return _env_int("GROUP_RANK", _env_int("NODE_RANK", 0))

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        if num_devices * num_nodes != self.world_size():
            raise ValueError(
                f"Trainer(devices={num_devices}, num_nodes={num_nodes}) asks for {num_devices * num_nodes} processes,"
                f" but the launcher started WORLD_SIZE={self.world_size()}. Make devices * num_nodes equal the"
                f" launcher's process count (torchrun: --nproc-per-node * --nnodes)."
            )


def _slurm_interactive() -> bool:
    # Lightning's convention: `srun --job-name=bash|interactive` means "a shell, not a training job".
    return os.environ.get("SLURM_JOB_NAME") in ("bash", "interactive")


def slurm_root_address(nodelist: str) -> str:
    """First host of a SLURM node list: 'a b', 'a,b', 'node[5-9]', 'node[05,07]', 'n[1-2],m[3]'."""
    nodelist = nodelist.strip()
    first = re.split(r"[ ,](?![^\[]*\])", nodelist)[0]  # split on separators outside brackets
    match = re.match(r"^(.*?)\[([^\]]*)\](.*)$", first)
    if match is None:
        return first
    prefix, ranges, suffix = match.groups()
    first_range = ranges.split(",")[0]
    return prefix + first_range.split("-")[0] + suffix


class SLURMEnvironment(ClusterEnvironment):
    """Processes started by `srun` (one task per device).

    auto_requeue: on SIGTERM or `requeue_signal` the fit saves its `last` checkpoint and rank 0 requeues the job
    with `scontrol requeue` (Lightning's SLURMEnvironment arguments and defaults)."""

    name = "slurm"

    def __init__(self, auto_requeue: bool = True, requeue_signal: Optional[signal.Signals] = None) -> None:
        self.auto_requeue = auto_requeue
        self.requeue_signal = requeue_signal if requeue_signal is not None else getattr(signal, "SIGUSR1", None)

    @staticmethod
    def detect() -> bool:
        return "SLURM_NTASKS" in os.environ and not _slurm_interactive()

    @property
    def creates_processes_externally(self) -> bool:
        return True

    @property
    def main_address(self) -> str:
        if "MASTER_ADDR" not in os.environ:
            os.environ["MASTER_ADDR"] = slurm_root_address(os.environ.get("SLURM_NODELIST", "127.0.0.1"))
        return os.environ["MASTER_ADDR"]

    @property
    def main_port(self) -> int:
        if "MASTER_PORT" in os.environ:
            return _env_int("MASTER_PORT")
        # Every task derives the same port from the job id without talking to the others.
        job_id = os.environ.get("SLURM_JOB_ID")
        port = int(job_id[-4:]) + 15000 if job_id and job_id[-4:].isdigit() else 12910
        os.environ["MASTER_PORT"] = str(port)
        return port

    def global_rank(self) -> int:
        return _env_int("SLURM_PROCID")

    def world_size(self) -> int:
        return _env_int("SLURM_NTASKS")

    def local_rank(self) -> int:
        return _env_int("SLURM_LOCALID")

    def node_rank(self) -> int:
        return _env_int("SLURM_NODEID")

    def validate_settings(self, num_devices: int, num_nodes: int) -> None:
        per_node = os.environ.get("SLURM_NTASKS_PER_NODE")
        if per_node is not None and per_node.isdigit() and int(per_node) != num_devices:
            raise ValueError(
                f"Trainer(devices={num_devices}) but SLURM started --ntasks-per-node={per_node}:"
                f" set devices={per_node} (one task per device)."
            )
        nnodes = os.environ.get("SLURM_NNODES")
        if nnodes is not None and nnodes.isdigit() and int(nnodes) != num_nodes:
            raise ValueError(f"Trainer(num_nodes={num_nodes}) but SLURM allocated --nodes={nnodes}: set num_nodes={nnodes}.")
        if num_devices * num_nodes != self.world_size():
            raise ValueError(
                f"Trainer(devices={num_devices}, num_nodes={num_nodes}) asks for {num_devices * num_nodes} processes,"
                f" but SLURM started SLURM_NTASKS={self.world_size()}."
            )


def detect_environment() -> ClusterEnvironment:
    """torchrun first (it may run inside a SLURM allocation), then SLURM, else a local run."""
    if TorchrunEnvironment.detect():
        return TorchrunEnvironment()
    if SLURMEnvironment.detect():
        return SLURMEnvironment()
    return LocalEnvironment()
