"""resolve_strategy: the Trainer's (strategy, accelerator, devices, num_nodes) -> one configured Strategy.

Lightning's rules: accelerator "auto" is CUDA when available, else CPU; devices "auto" is 1 on CPU and every
visible GPU on CUDA; strategy "auto" is DDP when num_nodes > 1 or more than one device is used (ddp_fork in
an interactive session), else a single device.
"""
import sys
from typing import Any, Dict, List, Optional, Sequence, Tuple, Union

import torch

from .ddp import DDPStrategy
from .environments import ClusterEnvironment, detect_environment
from .strategy import SingleDeviceStrategy, Strategy

# name -> DDPStrategy keyword arguments
_DDP_NAMES: Dict[str, Dict[str, Any]] = {
    "ddp": {"start_method": "popen"},
    "ddp_spawn": {"start_method": "spawn"},
    "ddp_fork": {"start_method": "fork"},
    "ddp_notebook": {"start_method": "fork"},
}
for _name, _kw in list(_DDP_NAMES.items()):
    for _flag in (False, True):
        _DDP_NAMES[f"{_name}_find_unused_parameters_{str(_flag).lower()}"] = {**_kw, "find_unused_parameters": _flag}

STRATEGY_NAMES: Tuple[str, ...] = ("auto", "single_device") + tuple(_DDP_NAMES) + ("fsdp",)
_ACCELERATORS = ("auto", "cpu", "cuda", "gpu")


class _StrategyRegistry(dict):
    """Strategy names -> how to build them (`lightning.pytorch.strategies.StrategyRegistry`): fastlight's built-in
    names, plus any a user registers; `Trainer(strategy=name)` accepts every registered name.

    Each entry is {"strategy": class, "description": str, "init_params": dict}; `get(name)` builds an instance.
    """

    def register(self, name: str, strategy: Optional[Any] = None, description: Optional[str] = None,
                 override: bool = False, **init_params: Any) -> Any:
        """Register `strategy` (a Strategy class) under `name`, built with `init_params`; usable as a decorator."""
        if not (name is None or isinstance(name, str)):
            raise TypeError(f"`name` must be a str, found {name!r}")
        if name in self and not override:
            raise ValueError(f"'{name}' is already present in the registry. HINT: Use `override=True`.")

        def do_register(strategy: Any) -> Any:
            self[name] = {"strategy": strategy, "description": description or strategy.__name__,
                          "init_params": init_params}
            return strategy

        if strategy is not None:
            return do_register(strategy)
        return do_register

    def get(self, name: str, default: Optional[Any] = None) -> Any:  # type: ignore[override]
        """A new instance of the strategy registered as `name` (`default` when there is none)."""
        if name in self:
            data = self[name]
            return data["strategy"](**data["init_params"])
        if default is not None:
            return default
        raise KeyError(f"Invalid strategy name '{name}'. Available strategies: {', '.join(self.available_strategies())}")

    def remove(self, name: str) -> None:
        self.pop(name)

    def available_strategies(self) -> List[str]:
        return list(self.keys())

    def __str__(self) -> str:
        return "Registered Strategies: {}".format(", ".join(self.keys()))


StrategyRegistry = _StrategyRegistry()
for _name, _kw in _DDP_NAMES.items():
    StrategyRegistry.register(_name, DDPStrategy, description=f"DDP strategy ({_name})", **_kw)


def _register_fsdp() -> None:
    from .fsdp import FSDPStrategy

    StrategyRegistry.register("fsdp", FSDPStrategy, description="Fully Sharded Data Parallel (FSDP2)")


_register_fsdp()


def _register_deepspeed() -> None:
    """Lightning's DeepSpeed names, so projects that look them up find them; building one raises the clear error
    (fastlight has no DeepSpeed integration)."""
    from .deepspeed import DeepSpeedStrategy

    stages = {"deepspeed": {}, "deepspeed_stage_1": {"stage": 1}, "deepspeed_stage_1_offload": {"stage": 1,
              "offload_optimizer": True}, "deepspeed_stage_2": {"stage": 2},
              "deepspeed_stage_2_offload": {"stage": 2, "offload_optimizer": True},
              "deepspeed_stage_3": {"stage": 3}, "deepspeed_stage_3_offload": {"stage": 3, "offload_optimizer": True,
                                                                               "offload_parameters": True},
              "deepspeed_stage_3_offload_nvme": {"stage": 3, "offload_optimizer": True, "offload_parameters": True,
                                                 "remote_device": "nvme", "offload_params_device": "nvme",
                                                 "offload_optimizer_device": "nvme"}}
    for name, params in stages.items():
        StrategyRegistry.register(name, DeepSpeedStrategy, description=f"DeepSpeed ({name}): not supported by"
                                  " fastlight", **params)


_register_deepspeed()


def _is_interactive() -> bool:
    return hasattr(sys, "ps1") or bool(getattr(sys.flags, "interactive", 0))


def _resolve_accelerator(accelerator: Any) -> str:
    if not isinstance(accelerator, str) or accelerator.lower() not in _ACCELERATORS:
        raise ValueError(f"accelerator={accelerator!r} is not supported; use one of {_ACCELERATORS}")
    from fastlight.accelerators import cuda as cuda_accelerator  # THE CUDA probe (patchable, as Lightning's)

    accelerator = accelerator.lower()
    if accelerator == "auto":
        return "cuda" if cuda_accelerator.is_cuda_available() else "cpu"
    if accelerator == "gpu":
        accelerator = "cuda"
    if accelerator == "cuda" and not cuda_accelerator.is_cuda_available():
        raise ValueError("accelerator='cuda' (or 'gpu') was requested but no CUDA device is available; use 'cpu'")
    return accelerator


def _parse_cpu_devices(devices: Any) -> List[torch.device]:
    if devices == "auto":
        return [torch.device("cpu")]
    if isinstance(devices, str) and devices.strip().isdigit():
        devices = int(devices)
    if isinstance(devices, bool) or not isinstance(devices, int) or devices <= 0:
        raise ValueError(
            f"devices={devices!r} with accelerator='cpu': give the number of processes, an int > 0 (or 'auto')"
        )
    return [torch.device("cpu")] * devices


def _parse_cuda_devices(devices: Any, launched_externally: bool) -> List[torch.device]:
    from fastlight.accelerators import cuda as cuda_accelerator

    available = cuda_accelerator.num_cuda_devices()
    if devices == "auto" or devices == -1 or devices == "-1":
        ids = list(range(available))
    elif isinstance(devices, str):
        text = devices.strip().strip("[]")
        parts = [p.strip() for p in text.split(",") if p.strip()]
        if not all(p.isdigit() for p in parts) or not parts:
            raise ValueError(f"devices={devices!r}: expected a count ('2'), a list of ids ('0,1'), 'auto' or '-1'")
        ids = list(range(int(parts[0]))) if len(parts) == 1 and "," not in text else [int(p) for p in parts]
    elif isinstance(devices, bool):
        raise ValueError(f"devices={devices!r} is not a device count or list")
    elif isinstance(devices, int):
        if devices <= 0:
            raise ValueError(f"devices={devices} with accelerator='cuda': ask for at least one GPU (or -1 for all)")
        ids = list(range(devices))
    elif isinstance(devices, (list, tuple)) and all(isinstance(d, int) and not isinstance(d, bool) for d in devices):
        ids = list(devices)
    else:
        raise ValueError(f"devices={devices!r}: expected an int, a list of GPU ids, a string like '0,1', or 'auto'")
    if not ids:
        raise ValueError("no CUDA device is available for devices='auto'")
    if len(set(ids)) != len(ids):
        raise ValueError(f"devices={devices!r} lists a GPU more than once")
    too_high = [i for i in ids if i >= available or i < 0]
    if too_high:
        # Under torchrun each process may see only its own GPU; Lightning skips this check then.
        if launched_externally and available == 1 and len(ids) > 1:
            return [torch.device("cuda", 0)] * len(ids)
        raise ValueError(
            f"devices={devices!r} asks for CUDA device(s) {too_high} but only {available} CUDA device(s) exist"
            f" (ids 0..{available - 1}); lower devices or set CUDA_VISIBLE_DEVICES"
        )
    return [torch.device("cuda", i) for i in ids]


def resolve_strategy(
    strategy: Union[str, Strategy] = "auto",
    accelerator: str = "auto",
    devices: Union[int, str, Sequence[int]] = "auto",
    num_nodes: int = 1,
    sync_batchnorm: bool = False,
    cluster_environment: Optional[ClusterEnvironment] = None,
) -> Strategy:
    """The Strategy for these Trainer flags, ready for `launcher.launch` / `setup_environment`."""
    if isinstance(num_nodes, bool) or not isinstance(num_nodes, int) or num_nodes < 1:
        raise ValueError(f"num_nodes={num_nodes!r}: expected an int >= 1")
    if isinstance(strategy, str):
        name = strategy.lower()
        if name.startswith("deepspeed"):
            from .deepspeed import deepspeed_unsupported

            raise deepspeed_unsupported(f"Trainer(strategy={strategy!r})")
        if name not in STRATEGY_NAMES and strategy in StrategyRegistry:  # a name the user registered
            strategy, name = StrategyRegistry.get(strategy), None
        elif name not in STRATEGY_NAMES:
            hint = " (not implemented in fastlight yet)" if name.startswith(("fsdp", "dp", "xla")) else ""
            raise ValueError(f"strategy={strategy!r} is not supported{hint}; use one of {list(STRATEGY_NAMES)}")
    if not isinstance(strategy, (str, Strategy)):
        raise ValueError(f"strategy={strategy!r}: expected a name such as 'ddp' or a Strategy instance")
    if isinstance(strategy, Strategy):
        name = None

    kind = _resolve_accelerator(accelerator)
    env = cluster_environment or (
        strategy.cluster_environment if isinstance(strategy, DDPStrategy) and strategy.cluster_environment else None
    )
    env = env or detect_environment()
    if kind == "cpu":
        parallel_devices = _parse_cpu_devices(devices)
    else:
        parallel_devices = _parse_cuda_devices(devices, env.creates_processes_externally)

    if isinstance(strategy, SingleDeviceStrategy):
        return strategy
    if isinstance(strategy, DDPStrategy):
        ddp = strategy
    elif name == "single_device":
        if len(parallel_devices) != 1 or num_nodes != 1:
            raise ValueError(f"strategy='single_device' needs one device, got devices={devices!r}, num_nodes={num_nodes}")
        return SingleDeviceStrategy(parallel_devices[0])
    elif name == "auto":
        if num_nodes == 1 and len(parallel_devices) == 1:
            return SingleDeviceStrategy(parallel_devices[0])
        ddp = DDPStrategy(**_DDP_NAMES["ddp_fork" if _is_interactive() else "ddp"])
    elif isinstance(strategy, Strategy):  # another Strategy subclass: taken as given
        return strategy
    elif name == "fsdp":
        from .fsdp import FSDPStrategy

        ddp = FSDPStrategy()
    else:
        ddp = DDPStrategy(**_DDP_NAMES[name])
    if not ddp.parallel_devices:
        ddp.parallel_devices = parallel_devices
    ddp.num_nodes = num_nodes
    ddp.sync_batchnorm = ddp.sync_batchnorm or sync_batchnorm
    if ddp.cluster_environment is None:
        ddp.cluster_environment = env
    ddp._set_world_ranks()
    return ddp
