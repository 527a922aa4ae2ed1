"""WeightAveraging: a torch AveragedModel of the module updated after optimizer steps (SWA by default, EMA with
`avg_fn=get_ema_avg_fn()`), Lightning 2.6's callback.

The averaged weights are swapped into the module for every validation epoch and copied into it when training ends;
checkpoints hold the averaged weights under "state_dict" and the current ones under "current_model_state".
"""
import itertools
from copy import deepcopy
from typing import Any, Dict, Optional, Union

import torch

from fastlight.utilities.rank_zero import rank_zero_info, rank_zero_warn

from .callback import Callback


def _overrides_configure_model(pl_module: Any) -> bool:
    from fastlight.core.module import LightningModule

    return isinstance(pl_module, LightningModule) and \
        type(pl_module).configure_model is not LightningModule.configure_model


class WeightAveraging(Callback):
    """Keeps a `torch.optim.swa_utils.AveragedModel` of the module.

    Args:
        device: where the averaged copy lives (None: the module's device).
        use_buffers: average the buffers (BatchNorm statistics) too; True by default, unlike AveragedModel.
        kwargs: passed to AveragedModel (`avg_fn`, `multi_avg_fn`).

    Override `should_update(step_idx=None, epoch_idx=None)` to choose when the average is updated: it is asked after
    each optimizer step (with the 0-based step index) and after each training epoch (with the epoch index); by
    default every step updates it.
    """

    def __init__(self, device: Optional[Union[torch.device, str, int]] = None, use_buffers: bool = True,
                 **kwargs: Any) -> None:
        self._device = torch.device(device) if isinstance(device, str) else device
        self._use_buffers = use_buffers
        self._kwargs = kwargs
        self._average_model: Any = None
        # global_step at the last update: 0 lets the first update follow the first optimizer step (after N batches
        # when accumulating N)
        self._latest_update_step = 0
        self._latest_update_epoch = -1

    def should_update(self, step_idx: Optional[int] = None, epoch_idx: Optional[int] = None) -> bool:
        """Whether to update the average after optimizer step `step_idx` or epoch `epoch_idx` (one is given)."""
        return step_idx is not None

    # ------------------------------------------------------------------------------------- hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if str(getattr(stage, "value", stage)) != "fit":
            return
        from torch.optim.swa_utils import AveragedModel

        device = self._device or pl_module.device
        if _overrides_configure_model(pl_module):
            rank_zero_warn(
                "You're using the WeightAveraging callback with a model that overrides the configure_model callback."
                " WeightAveraging doesn't support sharding model layers, so you may run out of memory.")
            pl_module.configure_model()  # the layers must exist before they are copied
        self._average_model = AveragedModel(model=pl_module, device=device, use_buffers=self._use_buffers,
                                            **self._kwargs)

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        step = trainer.global_step  # optimizer steps so far; the step just taken has index step - 1
        if step > self._latest_update_step and self.should_update(step_idx=step - 1):
            self._average_model.update_parameters(pl_module)
            self._latest_update_step = step

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        epoch = trainer.current_epoch
        if epoch > self._latest_update_epoch and self.should_update(epoch_idx=epoch):
            self._average_model.update_parameters(pl_module)
            self._latest_update_epoch = epoch

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        self._copy_average_to_current(pl_module)

    def on_validation_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        if self._average_model is not None:
            self._swap_models(pl_module)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._average_model is not None:
            self._swap_models(pl_module)

    # ------------------------------------------------------------------------------------- checkpoints
    def state_dict(self) -> Dict[str, Any]:
        return {"latest_update_step": self._latest_update_step}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        if "latest_update_step" not in state_dict:
            raise KeyError("WeightAveraging state in the checkpoint lacks 'latest_update_step'")
        self._latest_update_step = state_dict["latest_update_step"]

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        if self._average_model is None:
            rank_zero_info(
                "You're using the WeightAveraging callback, but saving a checkpoint outside the 'fit' stage. The state"
                " of the WeightAveraging callback won't be saved in the checkpoint. If training has finished, the"
                " average model parameters will be saved to the state_dict in the checkpoint.")
            return
        prefix = "module."
        average_state = self._average_model.state_dict()
        checkpoint["current_model_state"] = checkpoint["state_dict"]
        checkpoint["state_dict"] = {k[len(prefix):]: v for k, v in average_state.items() if k.startswith(prefix)}
        checkpoint["averaging_state"] = {k: v for k, v in average_state.items() if not k.startswith(prefix)}

    def on_load_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        if self._average_model is None:
            rank_zero_warn(
                "You're using the WeightAveraging callback, but loading a checkpoint outside the 'fit' stage. The"
                " WeightAveraging state cannot be restored. If you're using the checkpoint for prediction or testing,"
                " you can ignore this warning. To disable the warning, remove the WeightAveraging callback.")
        elif "current_model_state" in checkpoint and "averaging_state" in checkpoint:
            rank_zero_info("Found current_model_state in the checkpoint. This will be used to initialize the model.")
            average_state = {"module." + k: v for k, v in checkpoint["state_dict"].items()}
            average_state.update(checkpoint["averaging_state"])
            self._average_model.load_state_dict(average_state)
            # the module was loaded from "state_dict", the averaged weights: the training weights are these
            pl_module.load_state_dict(checkpoint["current_model_state"])
        else:
            rank_zero_warn(
                "The checkpoint was not created with WeightAveraging. Both the current and the average model will be"
                " initialized with state_dict.")
            self._average_model.module.load_state_dict(deepcopy(checkpoint["state_dict"]), strict=False)

    # ------------------------------------------------------------------------------------- weights
    def _pairs(self, pl_module: Any) -> Any:
        average = self._average_model.module
        return zip(itertools.chain(average.parameters(), average.buffers()),
                   itertools.chain(pl_module.parameters(), pl_module.buffers()))

    def _swap_models(self, pl_module: Any) -> None:
        for average, current in self._pairs(pl_module):
            saved = average.data.clone()
            average.data.copy_(current.data)
            current.data.copy_(saved)

    def _copy_average_to_current(self, pl_module: Any) -> None:
        for average, current in self._pairs(pl_module):
            current.data.copy_(average.data)


def __getattr__(name: str) -> Any:
    # Lightning defines EMAWeightAveraging in this module; fastlight keeps it in its own file (which imports this one)
    if name == "EMAWeightAveraging":
        from .ema_weight_averaging import EMAWeightAveraging

        return EMAWeightAveraging
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
