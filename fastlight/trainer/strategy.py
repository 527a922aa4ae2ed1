"""SingleDeviceStrategy: where the model and the batches meet the device. A distributed strategy (the DDP issue)
replaces this object and overrides the same methods:

- `setup_module(module)`: precision conversion + move to the device (DDP: wrap the module here);
- `setup_optimizers(optimizers)`: after `configure_optimizers` (DDP / fused engine: swap or wrap here);
- `process_dataloader(loader, stage)`: a dataloader just requested (DDP: inject a DistributedSampler);
- `batch_to_device(batch)`: move one batch (the trainer runs the transfer hooks around it);
- `barrier`, `broadcast`, `reduce`, `reduce_boolean_decision`, `all_gather`: collectives, no-ops here.
"""
from typing import Any, List, Optional

import torch


class SingleDeviceStrategy:
    is_distributed = False
    world_size = 1
    global_rank = 0
    local_rank = 0
    node_rank = 0
    is_global_zero = True

    def __init__(self, device: torch.device, precision: Any) -> None:
        self.root_device = device
        self.precision_plugin = precision
        self.model: Optional[torch.nn.Module] = None
        self.lightning_module: Optional[torch.nn.Module] = None

    def setup_module(self, module: torch.nn.Module) -> torch.nn.Module:
        converted = self.precision_plugin.convert_module(module)
        if converted is not module:
            raise RuntimeError("precision.convert_module must convert the module in place")
        module.to(self.root_device)
        self.model = self.lightning_module = module
        return module

    def setup_optimizers(self, optimizers: List[Any]) -> List[Any]:
        if self.root_device.type != "cpu":  # optimizer state loaded before setup follows the parameters
            for opt in optimizers:
                for state in opt.state.values():
                    for k, v in state.items():
                        if isinstance(v, torch.Tensor) and k != "step":
                            state[k] = v.to(self.root_device)
        return optimizers

    def process_dataloader(self, loader: Any, stage: str) -> Any:
        return loader

    def batch_to_device(self, batch: Any, move: Any, dataloader_idx: int) -> Any:
        return move(batch, self.root_device, dataloader_idx)

    def teardown(self) -> None:
        if self.root_device.type != "cpu" and self.lightning_module is not None:
            self.lightning_module.cpu()  # Lightning hands the module back on the CPU

    # -- collectives: a single process has nothing to exchange ------------------------------------
    def barrier(self, name: Optional[str] = None) -> None:
        pass

    def broadcast(self, obj: Any, src: int = 0) -> Any:
        return obj

    def reduce(self, tensor: Any, group: Any = None, reduce_op: Any = "mean") -> Any:
        return tensor

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    def all_gather(self, tensor: Any, group: Any = None, sync_grads: bool = False) -> Any:
        return tensor
