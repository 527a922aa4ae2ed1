"""Strategy: how a run is spread over devices and processes, behind one interface the Trainer calls.

The Trainer resolves a Strategy once (`resolve_strategy`), then, per run:

    strategy.launcher.launch(run_fn, ...)   # or run_fn(...) when strategy.launcher is None
      strategy.setup_environment()          # process group, device, ranks (inside run_fn, in every rank)
      model = strategy.setup_module(module) # move + wrap (DDP) once configure_model has run
      loader = strategy.process_dataloader(loader, stage)   # distributed sampler
      out = strategy.training_step(batch, batch_idx)       # through the wrapper's forward
      with strategy.block_backward_sync(): ...             # accumulation micro-batches
      strategy.reduce / all_gather / barrier / broadcast   # self.log(sync_dist), checkpoints
      strategy.save_checkpoint(ckpt, path); strategy.barrier()   # every rank calls; rank 0 writes
      strategy.teardown()

Collectives on a single device return their input, so the loop calls them unconditionally.

Lightning's strategy API around the module is here too: `connect(model)` (the Trainer connects the module at the start
of each run; `strategy.lightning_module` / `strategy.model` are THE module references, `trainer.lightning_module` reads
them), `backward(loss, optimizer)` (what `manual_backward` and a strategy that overrides it run),
`optimizer_step`, `precision_plugin` (set by the Trainer) and `tensor_init_context` (`Trainer.init_module`).
"""
import contextlib
import os
from typing import Any, Dict, Iterator, Optional, TypeVar, Union

import torch
from torch import nn

from .data import process_dataloader as _process_dataloader

T = TypeVar("T")


class Strategy:
    """Base class. Subclasses: SingleDeviceStrategy, DDPStrategy."""

    strategy_name = "base"

    def __init__(self) -> None:
        self.module: Optional[nn.Module] = None  # the user's module, unwrapped
        self.model: Optional[nn.Module] = None  # what the loop calls: the module or its wrapper
        self.sync_batchnorm = False
        # the run's precision plugin (fastlight.trainer.precision): the Trainer hands it over when it is created
        self.precision_plugin: Optional[Any] = None
        # the optimizers the loop steps and their LightningOptimizer wrappers (`trainer.optimizers` sets both)
        self.optimizers: list = []
        self._lightning_optimizers: list = []
        # how the run's processes start (strategies.launchers); None: the run function is called here, directly
        self._launcher: Optional[Any] = None

    # the module -----------------------------------------------------------------------------------------------
    def connect(self, model: nn.Module) -> None:
        """Connect the module this strategy runs (Lightning's `Strategy.connect`): the Trainer calls it at the start of
        every fit/validate/test/predict, before the setup hooks; `setup_module` moves (and wraps) it later."""
        self.module = model
        self.model = model

    @property
    def lightning_module(self) -> Optional[nn.Module]:
        """The connected module, without any wrapper (DDP's)."""
        return self.module

    # ranks and devices -------------------------------------------------------------------------------------
    @property
    def root_device(self) -> torch.device:
        raise NotImplementedError

    @property
    def global_rank(self) -> int:
        return 0

    @property
    def local_rank(self) -> int:
        return 0

    @property
    def node_rank(self) -> int:
        return 0

    @property
    def world_size(self) -> int:
        return 1

    @property
    def num_nodes(self) -> int:
        return 1

    @property
    def num_processes(self) -> int:
        return 1

    @property
    def is_global_zero(self) -> bool:
        return self.global_rank == 0

    @property
    def is_distributed(self) -> bool:
        return False

    @property
    def launcher(self) -> Optional[Any]:
        """None: call the run function directly. Otherwise call `launcher.launch(run_fn, *args, trainer=trainer)`."""
        return self._launcher

    @property
    def distributed_sampler_kwargs(self) -> Optional[Dict[str, int]]:
        return None

    # setup -------------------------------------------------------------------------------------------------
    def setup_environment(self) -> None:
        """Called in every rank before anything touches the device or other ranks."""

    def setup_module(self, module: nn.Module, training: bool = True) -> nn.Module:
        """Move `module` to root_device (and wrap it where the strategy needs); returns what the loop calls."""
        module.to(self.root_device)
        self.module = module
        self.model = module
        return module

    def unwrap(self) -> Optional[nn.Module]:
        return self.module

    def setup_optimizers(self, optimizers: list) -> list:
        """After configure_optimizers: optimizer state created before setup (e.g. loaded) follows the parameters
        to root_device, as in Lightning. Returns the optimizers the loop steps."""
        if self.root_device.type != "cpu":
            _optimizer_state_to(optimizers, self.root_device)
        return optimizers

    # steps ---------------------------------------------------------------------------------------------------
    def _step(self, method_name: str, *args: Any, **kwargs: Any) -> Any:
        if self.module is None:
            raise RuntimeError(f"strategy.{method_name} called before strategy.setup_module(module)")
        return getattr(self.module, method_name)(*args, **kwargs)

    def training_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._step("training_step", *args, **kwargs)

    def validation_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._step("validation_step", *args, **kwargs)

    def test_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._step("test_step", *args, **kwargs)

    def predict_step(self, *args: Any, **kwargs: Any) -> Any:
        return self._step("predict_step", *args, **kwargs)

    @contextlib.contextmanager
    def block_backward_sync(self, model: Optional[nn.Module] = None) -> Iterator[None]:
        """Wrap forward AND backward of a micro-batch that does not end an accumulation window."""
        yield

    def pre_backward(self, loss: torch.Tensor) -> None:
        """Call right before loss.backward() (manual optimization needs it under DDP)."""

    def post_backward(self, loss: torch.Tensor) -> None:
        """Called right after the backward (and its hooks)."""

    def backward(self, closure_loss: torch.Tensor, optimizer: Optional[Any], *args: Any, **kwargs: Any) -> torch.Tensor:
        """Backpropagate `closure_loss` through the precision plugin: pre_backward, then on_before_backward (with the
        scaled loss under 16-mixed), `LightningModule.backward`, on_after_backward, then post_backward. Returns the
        loss as backpropagated (scaled under 16-mixed), detached, as Lightning's does. `manual_backward` calls this;
        the fit loop calls it too when a strategy class outside fastlight overrides backward, pre_backward or
        post_backward (otherwise the loop calls the precision plugin directly: the same work)."""
        trainer = self._connected_trainer("backward")
        self.pre_backward(closure_loss)
        loss = trainer.precision_plugin.backward(trainer, closure_loss, optimizer, *args, **kwargs)
        self.post_backward(loss)
        return loss.detach()

    def optimizer_step(self, optimizer: Any, closure: Any, model: Optional[nn.Module] = None, **kwargs: Any) -> Any:
        """Step `optimizer` through the precision plugin (closure first, then on_before_optimizer_step, gradient
        clipping, the step), as `LightningOptimizer.step` does."""
        trainer = self._connected_trainer("optimizer_step")
        inner = getattr(optimizer, "_optimizer", optimizer)  # a LightningOptimizer steps its torch optimizer
        return trainer.precision_plugin.optimizer_step(inner, trainer, closure, **kwargs)

    def _connected_trainer(self, what: str) -> Any:
        module = self.module
        trainer = getattr(module, "_trainer", None) if module is not None else None
        if trainer is None or self.precision_plugin is None:
            raise RuntimeError(
                f"`strategy.{what}` needs a module attached to a Trainer that uses this strategy: call it during"
                " `trainer.fit(...)` (e.g. from `training_step`), or `strategy.connect(model)` with `model.trainer` set."
            )
        return trainer

    @contextlib.contextmanager
    def tensor_init_context(self, empty_init: Optional[bool] = None) -> Iterator[None]:
        """Tensors created inside go straight to `root_device`, in the dtype of a "-true" precision plugin;
        `empty_init=True` also skips torch.nn.init's initializations (weights loaded afterwards)."""
        from fastlight.utilities.init import skip_init

        with contextlib.ExitStack() as stack:
            stack.enter_context(torch.device(self.root_device))
            precision_context = getattr(self.precision_plugin, "tensor_init_context", None)
            if precision_context is not None:
                stack.enter_context(precision_context())
            if empty_init:
                stack.enter_context(skip_init())
            yield

    @contextlib.contextmanager
    def model_sharded_context(self) -> Iterator[None]:
        """Where a sharding strategy creates modules already sharded; nothing to do on one device or under DDP."""
        yield

    # data ----------------------------------------------------------------------------------------------------
    def process_dataloader(
        self,
        dataloader: Any,
        stage: str = "train",
        use_distributed_sampler: bool = True,
        overfit_batches: Union[int, float] = 0,
    ) -> Any:
        """Return the loader to iterate in this rank (with a DistributedSampler when distributed)."""
        return _process_dataloader(
            dataloader,
            stage=stage,
            sampler_kwargs=self.distributed_sampler_kwargs if use_distributed_sampler else None,
            overfit_batches=overfit_batches,
        )

    # collectives (identity on one process) -------------------------------------------------------------------
    def reduce(self, tensor: Any, group: Optional[Any] = None, reduce_op: Any = "mean") -> Any:
        return tensor

    def all_gather(self, data: Any, group: Optional[Any] = None, sync_grads: bool = False) -> Any:
        return data

    def barrier(self, name: Optional[str] = None) -> None:
        pass

    def broadcast(self, obj: T, src: int = 0) -> T:
        return obj

    def reduce_boolean_decision(self, decision: bool, all: bool = True) -> bool:
        return decision

    # checkpoints ---------------------------------------------------------------------------------------------
    # The Trainer builds the checkpoint dict from these, hands it to save_checkpoint on EVERY rank (only rank 0
    # writes, except for sharded strategies where every rank writes its shard), then calls barrier().
    def module_state_dict(self) -> Dict[str, Any]:
        """The unwrapped module's full state_dict (keys without DDP's "module." prefix)."""
        if self.module is None:
            raise RuntimeError("strategy.module_state_dict called before strategy.setup_module(module)")
        return self.module.state_dict()

    def optimizer_state(self, optimizer: torch.optim.Optimizer) -> Dict[str, Any]:
        return optimizer.state_dict()

    def save_checkpoint(self, checkpoint: Dict[str, Any], filepath: Union[str, "os.PathLike[str]"]) -> None:
        """Write `checkpoint` to `filepath` from global rank 0 (atomically: a temporary file, then a rename)."""
        if not self.is_global_zero:
            return
        path = os.fspath(filepath)
        directory = os.path.dirname(path)
        if directory:
            os.makedirs(directory, exist_ok=True)
        tmp = f"{path}.tmp{os.getpid()}"
        torch.save(checkpoint, tmp)
        os.replace(tmp, path)

    def load_checkpoint(self, filepath: Union[str, "os.PathLike[str]"]) -> Dict[str, Any]:
        """Every rank reads the whole file onto the CPU (a checkpoint from N ranks loads with any number)."""
        return torch.load(os.fspath(filepath), map_location="cpu", weights_only=False)

    def load_module_state_dict(self, state_dict: Dict[str, Any], strict: bool = True) -> None:
        if self.module is None:
            raise RuntimeError("strategy.load_module_state_dict called before strategy.setup_module(module)")
        self.module.load_state_dict(state_dict, strict=strict)

    def remove_checkpoint(self, filepath: Union[str, "os.PathLike[str]"]) -> None:
        if self.is_global_zero and os.path.exists(filepath):
            os.remove(filepath)

    # end -----------------------------------------------------------------------------------------------------
    def on_exception(self, exception: BaseException) -> None:
        """The Trainer calls this when the run raised in this rank."""

    def teardown(self) -> None:
        """Unwrap the module and hand it back on the CPU (Lightning does); the process group stays up so a later
        fit/validate in this script reuses it."""
        self.model = self.module
        if self.module is not None and self.root_device.type != "cpu":
            self.module.cpu()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(device={self.root_device})"


class SingleDeviceStrategy(Strategy):
    """One process, one device: no launcher, no wrapper, collectives are identities."""

    # a plain attribute, as in Lightning (it shadows Strategy's read-only property; tests set it to mock a run)
    world_size: int = 1

    strategy_name = "single_device"

    def __init__(self, device: Union[str, torch.device] = "cpu") -> None:
        super().__init__()
        self._root_device = torch.device(device)

    @property
    def root_device(self) -> torch.device:
        return self._root_device

    def setup_environment(self) -> None:
        if self._root_device.type == "cuda":
            torch.cuda.set_device(self._root_device)


class ParallelStrategy(Strategy):
    """Base of the strategies that run one process per device and talk through collectives (DDPStrategy,
    FSDPStrategy): `isinstance(trainer.strategy, ParallelStrategy)` tells a multi-process run's strategy apart."""


def backward_is_customized(strategy: Strategy) -> bool:
    """Whether `strategy`'s class takes over the backward: it (or a class between it and fastlight's) overrides
    backward, pre_backward or post_backward outside fastlight (a user's strategy, or a test's mock). fastlight's own
    strategies add nothing to the backward of automatic optimization, so the loop may call the precision plugin
    directly for them."""
    for name in ("backward", "pre_backward", "post_backward"):
        impl = getattr(type(strategy), name, None)
        if not (getattr(impl, "__module__", None) or "").startswith("fastlight.strategies."):
            return True
    return False


def _optimizer_state_to(optimizers: list, device: torch.device) -> None:
    for opt in optimizers:
        for state in opt.state.values():
            for key, value in state.items():
                if isinstance(value, torch.Tensor) and key != "step":
                    state[key] = value.to(device)
