"""BaseFinetuning: freeze modules before training and unfreeze them later into new optimizer param groups
(Lightning 2.6's callback; subclass it and implement `freeze_before_training` and `finetune_function`).

The param groups the optimizers had at each epoch start are kept by parameter name in the callback's checkpoint
state, so a resumed fit gets the groups that were added before the checkpoint back.
"""
from collections.abc import Iterable
from typing import Any, Dict, Generator, List, Optional, Union

import torch
from torch.nn import Module, ModuleDict
from torch.nn.modules.batchnorm import _BatchNorm

from fastlight.utilities.rank_zero import rank_zero_warn

from .callback import Callback

Modules = Union[Module, Iterable]


class BaseFinetuning(Callback):
    """Override `freeze_before_training(pl_module)` (called in `setup`, before `configure_optimizers`: freeze what
    must not train; build the optimizer from `requires_grad` params only) and
    `finetune_function(pl_module, epoch, optimizer)` (called at every train epoch start: unfreeze with
    `unfreeze_and_add_param_group`)."""

    def __init__(self) -> None:
        self._internal_optimizer_metadata: Dict[int, List[Dict[str, Any]]] = {}
        self._restarting = False

    # ------------------------------------------------------------------------------------- checkpoint state
    def state_dict(self) -> Dict[str, Any]:
        return {"internal_optimizer_metadata": self._internal_optimizer_metadata}

    def load_state_dict(self, state_dict: Dict[str, Any]) -> None:
        self._restarting = True
        # checkpoints older than Lightning 1.6 stored the metadata itself
        self._internal_optimizer_metadata = state_dict.get("internal_optimizer_metadata", state_dict)

    # ------------------------------------------------------------------------------------- hooks
    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        self.freeze_before_training(pl_module)
        if type(getattr(trainer, "strategy", None)).__name__ == "DeepSpeedStrategy":
            raise NotImplementedError("The Finetuning callback does not support running with the DeepSpeed strategy."
                                      " Choose a different strategy or disable the callback.")

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._restarting:
            return
        # a resumed fit: the optimizers get the param groups they had (unfrozen modules included) before their
        # states are loaded
        if self._internal_optimizer_metadata:
            by_name = dict(pl_module.named_parameters())
            for opt_idx, optimizer in enumerate(trainer.optimizers):
                groups = self._internal_optimizer_metadata.get(opt_idx)
                if groups is not None:
                    optimizer.param_groups = self._apply_mapping_to_param_groups(groups, by_name)
        self._restarting = False

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        for opt_idx, optimizer in enumerate(trainer.optimizers):
            num_param_groups = len(optimizer.param_groups)
            self.finetune_function(pl_module, trainer.current_epoch, optimizer)
            self._store(pl_module, opt_idx, num_param_groups, optimizer.param_groups)

    def finetune_function(self, pl_module: Any, epoch: int, optimizer: torch.optim.Optimizer) -> None:
        """Override to add your unfreeze logic."""
        raise NotImplementedError(f"{type(self).__name__} must implement `finetune_function`")

    def freeze_before_training(self, pl_module: Any) -> None:
        """Override to add your freeze logic."""
        raise NotImplementedError(f"{type(self).__name__} must implement `freeze_before_training`")

    # ------------------------------------------------------------------------------------- freezing helpers
    @staticmethod
    def flatten_modules(modules: Modules) -> List[Module]:
        """The leaf modules, plus parents that hold parameters themselves, of a module or a (nested) iterable of
        modules."""
        if isinstance(modules, ModuleDict):
            modules = modules.values()
        if isinstance(modules, Iterable):
            found: List[Module] = []
            for m in modules:
                found.extend(BaseFinetuning.flatten_modules(m))
            candidates = iter(found)
        else:
            candidates = modules.modules()
        return [m for m in candidates if not list(m.children()) or m._parameters]

    @staticmethod
    def filter_params(modules: Modules, train_bn: bool = True, requires_grad: bool = True) -> Generator:
        """The parameters of `modules` whose requires_grad equals `requires_grad` (BatchNorm's skipped unless
        `train_bn`)."""
        for mod in BaseFinetuning.flatten_modules(modules):
            if isinstance(mod, _BatchNorm) and not train_bn:
                continue
            for param in mod.parameters(recurse=False):  # parents with own params: no duplicates
                if param.requires_grad == requires_grad:
                    yield param

    @staticmethod
    def make_trainable(modules: Modules) -> None:
        for module in BaseFinetuning.flatten_modules(modules):
            if isinstance(module, _BatchNorm):
                module.track_running_stats = True
            for param in module.parameters(recurse=False):
                param.requires_grad = True

    @staticmethod
    def freeze_module(module: Module) -> None:
        if isinstance(module, _BatchNorm):
            module.track_running_stats = False
        for param in module.parameters(recurse=False):
            param.requires_grad = False

    @staticmethod
    def freeze(modules: Modules, train_bn: bool = True) -> None:
        """Freeze `modules`; their BatchNorm layers stay trainable when `train_bn`."""
        for mod in BaseFinetuning.flatten_modules(modules):
            if isinstance(mod, _BatchNorm) and train_bn:
                BaseFinetuning.make_trainable(mod)
            else:
                BaseFinetuning.freeze_module(mod)

    @staticmethod
    def filter_on_optimizer(optimizer: torch.optim.Optimizer, params: Iterable) -> list:
        """`params` without those already in one of the optimizer's groups (compared by value, as Lightning does)."""
        kept, skipped = [], []
        for param in params:
            present = any(torch.equal(p, param) for group in optimizer.param_groups for p in group["params"])
            (skipped if present else kept).append(param)
        if skipped:
            rank_zero_warn(
                "The provided params to be frozen already exist within another group of this optimizer."
                " Those parameters will be skipped.\n"
                "HINT: Did you init your optimizer in `configure_optimizer` as such:\n"
                f" {type(optimizer)}(filter(lambda p: p.requires_grad, self.parameters()), ...) ")
        return kept

    @staticmethod
    def unfreeze_and_add_param_group(modules: Modules, optimizer: torch.optim.Optimizer, lr: Optional[float] = None,
                                     initial_denom_lr: float = 10.0, train_bn: bool = True) -> None:
        """Unfreeze `modules` and give their parameters a new param group with `lr` (default: the first group's lr
        divided by `initial_denom_lr`)."""
        BaseFinetuning.make_trainable(modules)
        group_lr = optimizer.param_groups[0]["lr"] / initial_denom_lr if lr is None else float(lr)
        params = BaseFinetuning.filter_params(modules, train_bn=train_bn, requires_grad=True)
        params = BaseFinetuning.filter_on_optimizer(optimizer, params)
        if params:
            optimizer.add_param_group({"params": params, "lr": group_lr})

    # ------------------------------------------------------------------------------------- param-group metadata
    @staticmethod
    def _apply_mapping_to_param_groups(param_groups: List[Dict[str, Any]], mapping: dict) -> List[Dict[str, Any]]:
        """Each group with its params translated through `mapping` (param -> name, or name -> param)."""
        out = []
        for group in param_groups:
            translated = {k: v for k, v in group.items() if k != "params"}
            translated["params"] = [mapping[p] for p in group["params"]]
            out.append(translated)
        return out

    def _store(self, pl_module: Any, opt_idx: int, num_param_groups: int,
               current_param_groups: List[Dict[str, Any]]) -> None:
        names = {p: n for n, p in pl_module.named_parameters()}
        stored = self._internal_optimizer_metadata.get(opt_idx)
        if stored is None:
            self._internal_optimizer_metadata[opt_idx] = self._apply_mapping_to_param_groups(current_param_groups,
                                                                                             names)
        elif num_param_groups != len(current_param_groups):  # groups added this epoch
            stored.extend(self._apply_mapping_to_param_groups(current_param_groups[num_param_groups:], names))


def __getattr__(name: str) -> Any:
    # Lightning defines BackboneFinetuning in this module; fastlight keeps it in its own file (which imports this one)
    if name in ("BackboneFinetuning", "multiplicative"):
        from . import backbone_finetuning

        return getattr(backbone_finetuning, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
