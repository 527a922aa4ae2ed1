"""StochasticWeightAveraging: average the weights of the last epochs (Izmailov et al., 2018), Lightning 2.6's callback.

From `swa_epoch_start` the LR scheduler is replaced by torch's SWALR and, at each epoch start, the weights are folded
into a running average. When training ends the average replaces the weights. A model with BatchNorm gets one extra
epoch (max_epochs + 1, one more batch allowed, zero_grad and backward skipped, the whole epoch one accumulation window)
in which the forward passes recompute the running statistics for the averaged weights, as Lightning does.
"""
from copy import deepcopy
from typing import Any, Callable, Dict, List, Optional, Union

import torch
from torch import Tensor, nn

from fastlight.utilities.rank_zero import rank_zero_info, rank_zero_warn
from fastlight.utilities.types import LRSchedulerConfig

from .callback import Callback

_AvgFn = Callable[[Tensor, Tensor, Tensor], Tensor]


def _contains_batch_norm(module: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in module.modules())


class StochasticWeightAveraging(Callback):
    """Stochastic Weight Averaging over whole epochs.

    Args:
        swa_lrs: the SWA learning rate: a float for every param group, or a list with one per group.
        swa_epoch_start: an int >= 1 (SWA starts at that 1-based epoch) or a float in [0, 1] (a fraction of
            max_epochs).
        annealing_epochs: epochs SWALR takes to move from the current LR to `swa_lrs`.
        annealing_strategy: "cos" or "linear".
        avg_fn: `avg_fn(averaged_param, param, num_averaged) -> new averaged value`; None: the equal-weight mean.
        device: where the averaged copy lives; None: the module's device.
    """

    def __init__(
        self,
        swa_lrs: Union[float, List[float]],
        swa_epoch_start: Union[int, float] = 0.8,
        annealing_epochs: int = 10,
        annealing_strategy: str = "cos",
        avg_fn: Optional[_AvgFn] = None,
        device: Optional[Union[torch.device, str]] = torch.device("cpu"),
    ) -> None:
        start_error = "swa_epoch_start should be a >0 integer or a float between 0 and 1."
        if isinstance(swa_epoch_start, bool) or not isinstance(swa_epoch_start, (int, float)):
            raise ValueError(f"{start_error} Got {swa_epoch_start!r}.")
        if isinstance(swa_epoch_start, int) and swa_epoch_start < 1:
            raise ValueError(f"{start_error} Got {swa_epoch_start!r}.")
        if isinstance(swa_epoch_start, float) and not 0 <= swa_epoch_start <= 1:
            raise ValueError(f"{start_error} Got {swa_epoch_start!r}.")
        lrs_ok = (isinstance(swa_lrs, float) and swa_lrs > 0) or (
            isinstance(swa_lrs, list) and all(isinstance(lr, float) and lr > 0 for lr in swa_lrs))
        if not lrs_ok:
            raise ValueError(
                f"The `swa_lrs` should a positive float, or a list of positive floats. Got {swa_lrs!r}.")
        if annealing_strategy not in ("cos", "linear"):
            # torch's SWALR would refuse it only once SWA starts, epochs into the run
            raise ValueError(
                f"`annealing_strategy` must be 'cos' or 'linear', got {annealing_strategy!r}.")
        if isinstance(annealing_epochs, bool) or not isinstance(annealing_epochs, int) or annealing_epochs < 0:
            raise ValueError(f"`annealing_epochs` must be an int >= 0, got {annealing_epochs!r}.")
        if avg_fn is not None and not callable(avg_fn):
            raise ValueError("The `avg_fn` should be callable.")
        if device is not None and not isinstance(device, (torch.device, str)):
            raise ValueError(f"device is expected to be a torch.device or a str. Found {device}")

        self._swa_epoch_start = swa_epoch_start
        self._swa_lrs = swa_lrs
        self._annealing_epochs = annealing_epochs
        self._annealing_strategy = annealing_strategy
        self._avg_fn = avg_fn or self.avg_fn
        self._device = device
        self.n_averaged: Optional[Tensor] = None
        self.momenta: Dict[nn.Module, Optional[float]] = {}
        self._model_contains_batch_norm: Optional[bool] = None
        self._average_model: Optional[nn.Module] = None
        self._initialized = False
        self._swa_scheduler: Any = None
        self._scheduler_state: Optional[dict] = None  # from a checkpoint: loaded into SWALR when it is created
        self._init_n_averaged = 0
        self._latest_update_epoch = -1
        self._accumulate_grad_batches = 1
        self._max_epochs = -1

    # 0-based epochs of the averaging window
    @property
    def swa_start(self) -> int:
        return max(int(self._swa_epoch_start) - 1, 0)

    @property
    def swa_end(self) -> Union[int, float]:
        return float("inf") if self._max_epochs == -1 else self._max_epochs - 1

    @staticmethod
    def pl_module_contains_batch_norm(pl_module: nn.Module) -> bool:
        return _contains_batch_norm(pl_module)

    # ------------------------------------------------------------------------------------- hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if type(trainer.strategy).__name__ in ("FSDPStrategy", "DeepSpeedStrategy"):
            raise ValueError("SWA does not currently support sharded models.")
        # the copy is taken before the module moves to its device (as Lightning does)
        self._average_model = deepcopy(pl_module)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if len(trainer.optimizers) != 1:
            raise ValueError(f"SWA currently works with 1 `optimizer`; configure_optimizers returned"
                             f" {len(trainer.optimizers)}.")
        if len(trainer.lr_scheduler_configs) > 1:
            raise ValueError("SWA currently not supported for more than 1 `lr_scheduler`.")
        max_epochs = trainer.max_epochs
        if isinstance(self._swa_epoch_start, float):
            if max_epochs == -1:
                raise ValueError(
                    "SWA with `swa_epoch_start` as a float is not supported when `max_epochs=-1`."
                    " Please provide `swa_epoch_start` as an integer.")
            self._swa_epoch_start = int(max_epochs * self._swa_epoch_start)
        self._model_contains_batch_norm = _contains_batch_norm(pl_module)
        self._max_epochs = max_epochs
        if self._model_contains_batch_norm and max_epochs != -1:
            trainer.fit_loop.max_epochs += 1  # room for the batch-norm statistics epoch
        if self._scheduler_state is not None and trainer.lr_scheduler_configs:
            # resuming mid-SWA: the checkpoint's scheduler state is SWALR's, loaded when SWALR is rebuilt; drop the
            # user's scheduler so the trainer does not load SWALR's state into it
            trainer.lr_scheduler_configs.clear()

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        in_window = self.swa_start <= epoch <= self.swa_end
        if not self._initialized and in_window:
            self._initialized = True
            self._start_swa(trainer, pl_module)
        if in_window and epoch > self._latest_update_epoch:
            self.update_parameters(self._average_model, pl_module, self.n_averaged, self._avg_fn)
            self._latest_update_epoch = epoch
        if self._max_epochs != -1 and epoch == self.swa_end + 1:
            self._start_batch_norm_epoch(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Any, *args: Any) -> None:
        trainer.fit_loop._skip_backward = False

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        last_epoch = trainer.current_epoch - 1  # the loop has already counted the last epoch
        if self._model_contains_batch_norm and self._max_epochs != -1 and last_epoch == self.swa_end + 1:
            # the batch-norm epoch ran: undo its settings (the averaged weights are already in place)
            trainer.accumulate_grad_batches = self._accumulate_grad_batches
            trainer.fit_loop.max_batches -= 1
            trainer.fit_loop.max_epochs -= 1
            self.reset_momenta()
        elif last_epoch == self.swa_end or self._max_epochs == -1:
            if self._average_model is not None:
                self.transfer_weights(self._average_model, pl_module)

    # ------------------------------------------------------------------------------------- steps of SWA
    def _start_swa(self, trainer: Any, pl_module: Any) -> None:
        from torch.optim.swa_utils import SWALR

        self._average_model = self._average_model.to(self._device or pl_module.device)
        optimizer = trainer.optimizers[0]
        if isinstance(self._swa_lrs, float):
            self._swa_lrs = [self._swa_lrs] * len(optimizer.param_groups)
        if len(self._swa_lrs) != len(optimizer.param_groups):
            raise ValueError(f"`swa_lrs` has {len(self._swa_lrs)} values but the optimizer has"
                             f" {len(optimizer.param_groups)} param groups.")
        for lr, group in zip(self._swa_lrs, optimizer.param_groups):
            group["initial_lr"] = lr  # SWALR built with last_epoch != -1 starts from these
        self._swa_scheduler = SWALR(
            optimizer,
            swa_lr=self._swa_lrs,
            anneal_epochs=self._annealing_epochs,
            anneal_strategy=self._annealing_strategy,
            last_epoch=trainer.max_epochs if self._annealing_strategy == "cos" else -1,
        )
        if self._scheduler_state is not None:
            self._swa_scheduler.load_state_dict(self._scheduler_state)
        elif trainer.current_epoch != self.swa_start:
            rank_zero_warn("SWA is initializing after swa_start without any checkpoint data. This may be caused by"
                           " loading a checkpoint from an older version of PyTorch Lightning.")
        swa_config = LRSchedulerConfig(self._swa_scheduler)  # stepped every epoch
        configs = trainer.lr_scheduler_configs
        if configs:
            current = configs[0]
            if current.interval != "epoch" or current.frequency != 1:
                rank_zero_warn(f"SWA is currently only supported every epoch. Found {current}")
            rank_zero_info(f"Swapping scheduler `{type(current.scheduler).__name__}`"
                           f" for `{type(self._swa_scheduler).__name__}`")
            configs[0] = swa_config
        else:
            configs.append(swa_config)
        if self.n_averaged is None:
            self.n_averaged = torch.tensor(self._init_n_averaged, dtype=torch.long, device=pl_module.device)

    def _start_batch_norm_epoch(self, trainer: Any, pl_module: Any) -> None:
        """The averaged weights go into the module; its batch-norm statistics are recomputed by this epoch's forward
        passes (no backward, no zero_grad; one accumulation window, so only the last batch calls the optimizer)."""
        self.transfer_weights(self._average_model, pl_module)
        self.reset_batch_norm_and_save_state(pl_module)
        loop = trainer.fit_loop
        if not isinstance(loop.max_batches, int):
            raise ValueError("SWA's batch-norm update needs a train dataloader with a length; iterable-style datasets"
                             " are not supported.")
        loop.max_batches += 1
        loop._skip_backward = True
        self._accumulate_grad_batches = trainer.accumulate_grad_batches
        trainer.accumulate_grad_batches = loop.max_batches

    @staticmethod
    def transfer_weights(src_pl_module: nn.Module, dst_pl_module: nn.Module) -> None:
        for src, dst in zip(src_pl_module.parameters(), dst_pl_module.parameters()):
            dst.detach().copy_(src.to(dst.device))

    def reset_batch_norm_and_save_state(self, pl_module: nn.Module) -> None:
        """Fresh running statistics and a cumulative mean (momentum None) for the recomputing epoch."""
        self.momenta = {}
        device = pl_module.device
        for module in pl_module.modules():
            if not isinstance(module, nn.modules.batchnorm._BatchNorm):
                continue
            module.running_mean = torch.zeros_like(module.running_mean, device=device)
            module.running_var = torch.ones_like(module.running_var, device=device)
            self.momenta[module] = module.momentum
            module.momentum = None
            module.num_batches_tracked *= 0

    def reset_momenta(self) -> None:
        for module, momentum in self.momenta.items():
            module.momentum = momentum

    @staticmethod
    def update_parameters(average_model: nn.Module, model: nn.Module, n_averaged: Tensor, avg_fn: _AvgFn) -> None:
        for p_avg, p_model in zip(average_model.parameters(), model.parameters()):
            avg = p_avg.detach()
            current = p_model.detach().to(avg.device)
            avg.copy_(current if n_averaged == 0 else avg_fn(avg, current, n_averaged.to(avg.device)))
        n_averaged += 1

    @staticmethod
    def avg_fn(averaged_model_parameter: Tensor, model_parameter: Tensor, num_averaged: Tensor) -> Tensor:
        """The running equal-weight mean."""
        return averaged_model_parameter + (model_parameter - averaged_model_parameter) / (num_averaged + 1)

    # ------------------------------------------------------------------------------------- checkpoint state
    def state_dict(self) -> Dict[str, Any]:
        return {
            "n_averaged": 0 if self.n_averaged is None else self.n_averaged.item(),
            "latest_update_epoch": self._latest_update_epoch,
            "scheduler_state": None if self._swa_scheduler is None else self._swa_scheduler.state_dict(),
            "average_model_state": None if self._average_model is None else self._average_model.state_dict(),
        }

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        missing = {"n_averaged", "latest_update_epoch", "scheduler_state", "average_model_state"} - set(state_dict)
        if missing:
            raise KeyError(f"StochasticWeightAveraging state in the checkpoint lacks {sorted(missing)}")
        self._init_n_averaged = state_dict["n_averaged"]
        self._latest_update_epoch = state_dict["latest_update_epoch"]
        self._scheduler_state = state_dict["scheduler_state"]
        if self._average_model is not None and state_dict["average_model_state"] is not None:
            self._average_model.load_state_dict(state_dict["average_model_state"])
