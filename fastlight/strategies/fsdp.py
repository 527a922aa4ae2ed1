"""FSDPStrategy: parameters, gradients and optimizer state sharded over the ranks with FSDP2
(torch.distributed.fsdp.fully_shard). Processes, environments and collectives are DDPStrategy's.

Sharding units: every submodule whose class is in `auto_wrap_policy` (or for which the callable returns
True) becomes its own unit, then the root module. A module that the user already sharded in configure_model
(any FSDPModule inside) is left as it is. Optimizers must be created after setup_module (the parameters
become DTensors there).

Checkpoints: state_dict_type="sharded" (default) writes a directory with torch.distributed.checkpoint, every
rank its own shard; "full" gathers the whole state on rank 0 and writes one file like DDP.
"""
import contextlib
import os
from typing import Any, Callable, Dict, Iterator, List, Optional, Set, Type, Union

import torch
from torch import nn

from .ddp import DDPStrategy, _call_through_wrapper

_META_FILE = "meta.pt"


def _fsdp():
    from torch.distributed.fsdp import FSDPModule, fully_shard

    return FSDPModule, fully_shard


class FSDPStrategy(DDPStrategy):
    strategy_name = "fsdp"

    def __init__(
        self,
        auto_wrap_policy: Optional[Union[Set[Type[nn.Module]], Callable[[nn.Module], bool]]] = None,
        reshard_after_forward: bool = True,
        state_dict_type: str = "sharded",
        mp_policy: Optional[Any] = None,
        **kwargs: Any,
    ) -> None:
        if state_dict_type not in ("sharded", "full"):
            raise ValueError(f"state_dict_type={state_dict_type!r}: expected 'sharded' or 'full'")
        for key in ("find_unused_parameters", "sync_batchnorm"):
            if kwargs.get(key):
                raise ValueError(f"FSDPStrategy does not support {key}=True")
        super().__init__(**kwargs)
        self.auto_wrap_policy = auto_wrap_policy
        self.reshard_after_forward = reshard_after_forward
        self.state_dict_type = state_dict_type
        self.mp_policy = mp_policy

    def _wraps(self, module: nn.Module) -> bool:
        policy = self.auto_wrap_policy
        if policy is None:
            return False
        if callable(policy) and not isinstance(policy, (set, frozenset, list, tuple)):
            return bool(policy(module))
        return isinstance(module, tuple(policy))

    def setup_module(self, module: nn.Module, training: bool = True) -> nn.Module:
        FSDPModule, fully_shard = _fsdp()
        from torch.distributed.device_mesh import init_device_mesh

        if self.sync_batchnorm:
            raise ValueError("FSDPStrategy does not support sync_batchnorm")
        module.to(self.root_device)
        if not any(isinstance(m, FSDPModule) for m in module.modules()):
            mesh = init_device_mesh(self.root_device.type, (self.world_size,))
            kwargs: Dict[str, Any] = {"mesh": mesh, "reshard_after_forward": self.reshard_after_forward}
            if self.mp_policy is not None:
                kwargs["mp_policy"] = self.mp_policy
            # children before parents: a unit's parameters are those not already in an inner unit
            units = [m for m in module.modules() if m is not module and self._wraps(m)]
            for unit in reversed(units):
                fully_shard(unit, **kwargs)
            fully_shard(module, **kwargs)
        self.module = self.model = module
        return module

    def _step(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        if self.module is None:
            raise RuntimeError(f"strategy.{method_name} called before strategy.setup_module(module)")
        # Through module.__call__, so the root unit's hooks gather its parameters around the step.
        return _call_through_wrapper(self.module, self.module, method_name, args, kwargs)

    @contextlib.contextmanager
    def block_backward_sync(self, model: Optional[nn.Module] = None) -> Iterator[None]:
        FSDPModule, _ = _fsdp()
        model = model if model is not None else self.module
        if not isinstance(model, FSDPModule):
            yield
            return
        model.set_requires_gradient_sync(False)
        try:
            yield
        finally:
            model.set_requires_gradient_sync(True)

    def pre_backward(self, loss: torch.Tensor) -> None:
        pass

    # checkpoints -------------------------------------------------------------------------------------------
    def _options(self, full: bool):
        from torch.distributed.checkpoint.state_dict import StateDictOptions

        return StateDictOptions(full_state_dict=full, cpu_offload=full)

    def module_state_dict(self) -> Dict[str, Any]:
        """Collective. "full": the whole state on rank 0 (CPU), {} elsewhere; "sharded": this rank's DTensors."""
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.module, options=self._options(self.state_dict_type == "full"))

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> Dict[str, Any]:
        """Collective; keyed by parameter names (torch.distributed.checkpoint's layout)."""
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        return get_optimizer_state_dict(self.module, optimizer, options=self._options(self.state_dict_type == "full"))

    def save_checkpoint(self, checkpoint: Dict[str, Any], filepath: Union[str, "os.PathLike[str]"]) -> None:
        """"full": rank 0 writes one file. "sharded": `filepath` becomes a directory; every rank writes its
        shards of "state_dict" and "optimizer_states", rank 0 writes the rest to meta.pt. Call on every rank."""
        if self.state_dict_type == "full":
            return super().save_checkpoint(checkpoint, filepath)
        import torch.distributed.checkpoint as dcp

        path = os.fspath(filepath)
        sharded = {k: checkpoint[k] for k in ("state_dict", "optimizer_states") if k in checkpoint}
        rest = {k: v for k, v in checkpoint.items() if k not in sharded}
        dcp.save(sharded, checkpoint_id=path)
        if self.is_global_zero:
            torch.save(rest, os.path.join(path, _META_FILE))
        self.barrier("fsdp_save_checkpoint")

    def load_checkpoint(
        self, filepath: Union[str, "os.PathLike[str]"], optimizers: Optional[List[torch.optim.Optimizer]] = None
    ) -> Dict[str, Any]:
        """A sharded directory: every rank reads its shards, resharded to the current world size; pass the
        optimizers (created after setup_module) to get their states. A single file: as DDP."""
        path = os.fspath(filepath)
        if not os.path.isdir(path):
            return super().load_checkpoint(path)
        import torch.distributed.checkpoint as dcp

        template: Dict[str, Any] = {"state_dict": self.module_state_dict_for_load()}
        if optimizers:
            template["optimizer_states"] = [self.optimizer_state(o) for o in optimizers]
        dcp.load(template, checkpoint_id=path)
        meta_path = os.path.join(path, _META_FILE)
        checkpoint = torch.load(meta_path, map_location="cpu", weights_only=False) if os.path.exists(meta_path) else {}
        checkpoint.update(template)
        return checkpoint

    def module_state_dict_for_load(self) -> Dict[str, Any]:
        from torch.distributed.checkpoint.state_dict import get_model_state_dict

        return get_model_state_dict(self.module, options=self._options(False))

    def load_module_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> None:
        """Collective. Accepts this strategy's sharded state or a full state (from any checkpoint)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict
        from torch.distributed.tensor import DTensor

        sharded = any(isinstance(v, DTensor) for v in state_dict.values())
        options = StateDictOptions(full_state_dict=not sharded, strict=strict)
        set_model_state_dict(self.module, state_dict, options=options)

    def load_optimizer_state_dict(self, optimizer: torch.optim.Optimizer, state: Dict[str, Any]) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
        from torch.distributed.tensor import DTensor

        def has_dtensor(obj: Any) -> bool:
            if isinstance(obj, DTensor):
                return True
            if isinstance(obj, dict):
                return any(has_dtensor(v) for v in obj.values())
            return False

        options = StateDictOptions(full_state_dict=not has_dtensor(state.get("state", {})))
        set_optimizer_state_dict(self.module, optimizer, state, options=options)
