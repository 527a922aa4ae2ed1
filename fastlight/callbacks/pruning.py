"""ModelPruning: prune parameters with torch.nn.utils.prune at epoch ends (Lightning's callback, same options).

torch's pruning re-parametrizes a module: `<name>_orig` (the same Parameter object, so optimizers keep it) and a
`<name>_mask` buffer, with a forward pre-hook that sets `<name> = <name>_orig * <name>_mask`. The lottery ticket
step writes the setup-time values back into `<name>_orig` in place (fused optimizers keep pointing at its storage).
"""
import inspect
from copy import deepcopy
from functools import partial
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

from torch import Tensor, nn

from fastlight.core import LightningModule
from fastlight.utilities.rank_zero import module_logger, rank_zero_only

from .callback import Callback

log = module_logger(__name__)

_PARAM_LIST = Sequence[Tuple[nn.Module, str]]
_MODULE_CONTAINERS = (LightningModule, nn.Sequential, nn.ModuleList, nn.ModuleDict)
_PRUNING_NAMES = ("ln_structured", "l1_unstructured", "random_structured", "random_unstructured")


def _prune() -> Any:
    import torch.nn.utils.prune as prune  # only when pruning is used

    return prune


def _pruning_functions() -> Dict[str, Callable]:
    prune = _prune()
    return {name: getattr(prune, name) for name in _PRUNING_NAMES}


def _pruning_methods() -> Dict[str, type]:
    prune = _prune()
    return {"ln_structured": prune.LnStructured, "l1_unstructured": prune.L1Unstructured,
            "random_structured": prune.RandomStructured, "random_unstructured": prune.RandomUnstructured}


class ModelPruning(Callback):
    """Args (Lightning's):
        pruning_fn: "l1_unstructured", "random_unstructured", "ln_structured", "random_structured", or a
            torch.nn.utils.prune.BasePruningMethod subclass (global pruning only).
        parameters_to_prune: (module, parameter name) pairs; empty or None: every weight/bias of the model.
        parameter_names: "weight" and/or "bias", used when parameters_to_prune is empty.
        use_global_unstructured: rank all the parameters together (unstructured methods only).
        amount: fraction (float) or count (int) to prune, or a function of the epoch returning one.
        apply_pruning: bool or function of the epoch.
        make_pruning_permanent: drop the masks at train end and write pruned values into checkpoints.
        use_lottery_ticket_hypothesis: bool or function of the epoch: reset the kept weights to their values at
            setup after each pruning.
        resample_parameters: with the lottery ticket, reset them with `reset_parameters()` instead.
        pruning_dim, pruning_norm: for the structured methods.
        verbose: 0 quiet, 1 overall sparsity, 2 per parameter too.
        prune_on_train_epoch_end: prune at the train epoch end (else at the validation epoch end).
    """

    PARAMETER_NAMES = ("weight", "bias")

    def __init__(
        self,
        pruning_fn: Union[Callable, str],
        parameters_to_prune: Optional[_PARAM_LIST] = None,
        parameter_names: Optional[List[str]] = None,
        use_global_unstructured: bool = True,
        amount: Union[int, float, Callable[[int], Union[int, float]]] = 0.5,
        apply_pruning: Union[bool, Callable[[int], bool]] = True,
        make_pruning_permanent: bool = True,
        use_lottery_ticket_hypothesis: Union[bool, Callable[[int], bool]] = True,
        resample_parameters: bool = False,
        pruning_dim: Optional[int] = None,
        pruning_norm: Optional[int] = None,
        verbose: int = 0,
        prune_on_train_epoch_end: bool = True,
    ) -> None:
        self._use_global_unstructured = use_global_unstructured
        self._parameters_to_prune: _PARAM_LIST = parameters_to_prune or ()
        self._use_lottery_ticket_hypothesis = use_lottery_ticket_hypothesis
        self._resample_parameters = resample_parameters
        self._prune_on_train_epoch_end = prune_on_train_epoch_end
        self._parameter_names = parameter_names or self.PARAMETER_NAMES
        self._global_kwargs: Dict[str, Any] = {}
        self._original_layers: Optional[Dict[int, Dict[str, Any]]] = None
        self._pruning_method_name: Optional[str] = None
        for name in self._parameter_names:
            if name not in self.PARAMETER_NAMES:
                raise ValueError(f"The provided `parameter_names` name: {name} isn't in {self.PARAMETER_NAMES}")
        if isinstance(pruning_fn, str):
            name = pruning_fn.lower()
            if name not in _PRUNING_NAMES:
                raise ValueError(
                    f"The provided `pruning_fn` {name} isn't available in PyTorch's built-in functions:"
                    f" {list(_PRUNING_NAMES)} "
                )
            kwargs: Dict[str, Any] = {}
            if name.endswith("_structured"):
                if pruning_dim is None:
                    raise ValueError("When requesting `structured` pruning, the `pruning_dim` should be provided.")
                if name == "ln_structured":
                    if pruning_norm is None:
                        raise ValueError(
                            "When requesting `ln_structured` pruning, the `pruning_norm` should be provided."
                        )
                    kwargs["n"] = pruning_norm
                kwargs["dim"] = pruning_dim
            pruning_fn = self._create_pruning_fn(name, **kwargs)
        elif self._is_pruning_method(pruning_fn):
            if not use_global_unstructured:
                raise ValueError(
                    "PyTorch `BasePruningMethod` is currently only supported with `use_global_unstructured=True`."
                )
        else:
            raise ValueError(
                f"`pruning_fn` is expected to be a str in {list(_PRUNING_NAMES)} or a PyTorch `BasePruningMethod`."
                f" Found: {pruning_fn}. HINT: if passing a `BasePruningMethod`, pass the class, not an instance"
            )
        if use_global_unstructured and pruning_fn.PRUNING_TYPE != "unstructured":  # type: ignore[union-attr]
            raise ValueError(
                'Only the "unstructured" PRUNING_TYPE is supported with `use_global_unstructured=True`.'
                f" Found method {pruning_fn} of type {pruning_fn.PRUNING_TYPE}. "  # type: ignore[union-attr]
            )
        self.pruning_fn = pruning_fn
        self._apply_pruning = apply_pruning
        self._make_pruning_permanent = make_pruning_permanent
        if isinstance(amount, bool) or not (isinstance(amount, (int, float)) or callable(amount)):
            raise ValueError("`amount` should be provided and be either an int, a float or Callable function.")
        self.amount = amount
        if verbose not in (0, 1, 2):
            raise ValueError("`verbose` must be any of (0, 1, 2)")
        self._verbose = verbose

    # -- set-up -----------------------------------------------------------------------------------------------------
    def filter_parameters_to_prune(self, parameters_to_prune: _PARAM_LIST = ()) -> _PARAM_LIST:
        """Override to choose which of the (module, name) pairs are pruned."""
        return parameters_to_prune

    def _create_pruning_fn(self, name: str, **kwargs: Any) -> Any:
        """Global pruning takes torch's method class (its kwargs kept for global_unstructured); local pruning the
        function with the structured kwargs bound."""
        if self._use_global_unstructured:
            method = _pruning_methods()[name]
            self._global_kwargs = kwargs
            self._pruning_method_name = method.__name__
            return method
        fn = _pruning_functions()[name]
        self._pruning_method_name = fn.__name__
        return partial(fn, **kwargs)

    @staticmethod
    def _is_pruning_method(method: Any) -> bool:
        return inspect.isclass(method) and issubclass(method, _prune().BasePruningMethod)

    @staticmethod
    def sanitize_parameters_to_prune(pl_module: nn.Module, parameters_to_prune: _PARAM_LIST = (),
                                     parameter_names: Sequence[str] = ()) -> _PARAM_LIST:
        """Every (module, weight/bias) of the model when none are given; else check that the given ones exist."""
        names = parameter_names or ModelPruning.PARAMETER_NAMES
        modules = [m for m in pl_module.modules() if not isinstance(m, _MODULE_CONTAINERS)]
        if not parameters_to_prune:
            return [(m, n) for n in names for m in modules if isinstance(getattr(m, n, None), nn.Parameter)]
        if not (isinstance(parameters_to_prune, (list, tuple))
                and all(isinstance(p, (list, tuple)) and len(p) == 2 for p in parameters_to_prune)
                and all(isinstance(m, nn.Module) and isinstance(n, str) for m, n in parameters_to_prune)):
            raise ValueError(
                "The provided `parameters_to_prune` should either be list of tuple"
                " with 2 elements: (nn.Module, parameter_name_to_prune) or None"
            )
        missing_modules = [m for m, _ in parameters_to_prune if not any(m is x for x in modules)]
        missing_parameters = [n for m, n in parameters_to_prune
                              if any(m is x for x in modules) and not hasattr(m, n)]
        if missing_modules or missing_parameters:
            raise ValueError(
                "Some provided `parameters_to_prune` don't exist in the model."
                f" Found missing modules: {missing_modules} and missing parameters: {missing_parameters}"
            )
        return parameters_to_prune

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        chosen = self.sanitize_parameters_to_prune(pl_module, self._parameters_to_prune,
                                                   parameter_names=self._parameter_names)
        self._parameters_to_prune = self.filter_parameters_to_prune(chosen)
        if self._use_lottery_ticket_hypothesis:
            # a copy of each module as it is now: the "winning ticket" values the kept weights go back to
            self._original_layers = {}
            for i, (module, name) in enumerate(self._parameters_to_prune):
                entry = self._original_layers.setdefault(id(module), {"data": deepcopy(module), "names": []})
                entry["names"].append((i, name))

    # -- pruning ----------------------------------------------------------------------------------------------------
    def make_pruning_permanent(self, module: nn.Module) -> None:
        """Bake the masks into the parameters and drop torch's pruning pre-hooks and buffers."""
        base = _prune().BasePruningMethod
        for _, sub in module.named_modules():
            for key in list(sub._forward_pre_hooks):
                hook = sub._forward_pre_hooks[key]
                if isinstance(hook, base):
                    hook.remove(sub)
                    del sub._forward_pre_hooks[key]

    @staticmethod
    def _copy_param(new: nn.Module, old: nn.Module, name: str) -> None:
        dst = getattr(new, name + "_orig") if hasattr(new, name + "_orig") else getattr(new, name)
        src = getattr(old, name)
        if not isinstance(dst, Tensor) or not isinstance(src, Tensor):
            return
        # Lightning does `dst.data = src.data`: the parameter then shares storage with the kept copy, so later
        # updates reach the copy too and later resets keep the trained values. Same result here, but the values are
        # copied in place and the copy is pointed at the parameter, so the parameter's storage never moves (fused
        # optimizers and flat gradient buffers hold it)
        dst.data.copy_(src.data)
        src.data = dst.data

    def apply_lottery_ticket_hypothesis(self) -> None:
        assert self._original_layers is not None
        for entry in self._original_layers.values():
            original = entry["data"]
            if self._resample_parameters and callable(getattr(original, "reset_parameters", None)):
                original = deepcopy(original)  # keep the setup-time values for the next time
                original.reset_parameters()
            for i, name in entry["names"]:
                module, _ = self._parameters_to_prune[i]
                self._copy_param(module, original, name)

    def _apply_local_pruning(self, amount: Union[int, float]) -> None:
        for module, name in self._parameters_to_prune:
            self.pruning_fn(module, name=name, amount=amount)

    def _resolve_global_kwargs(self, amount: Union[int, float]) -> Dict[str, Any]:
        self._global_kwargs["amount"] = amount
        accepted = set(inspect.signature(self.pruning_fn).parameters) - {"self"}
        return {k: v for k, v in self._global_kwargs.items() if k in accepted}

    def _apply_global_pruning(self, amount: Union[int, float]) -> None:
        _prune().global_unstructured(self._parameters_to_prune, pruning_method=self.pruning_fn,
                                     **self._resolve_global_kwargs(amount))

    @staticmethod
    def _get_pruned_stats(module: nn.Module, name: str) -> Tuple[int, int]:
        mask = getattr(module, f"{name}_mask", None)
        if mask is None:
            return 0, 1
        return int((mask == 0).sum().item()), mask.numel()

    def apply_pruning(self, amount: Union[int, float]) -> None:
        prev = [self._get_pruned_stats(m, n) for m, n in self._parameters_to_prune] if self._verbose else []
        if self._use_global_unstructured:
            self._apply_global_pruning(amount)
        else:
            self._apply_local_pruning(amount)
        if self._verbose:
            curr = [self._get_pruned_stats(m, n) for m, n in self._parameters_to_prune]
            self._log_sparsity_stats(prev, curr, amount=amount)

    @rank_zero_only
    def _log_sparsity_stats(self, prev: List[Tuple[int, int]], curr: List[Tuple[int, int]],
                            amount: Union[int, float] = 0) -> None:
        total = sum(n for _, n in curr)
        before, after = sum(z for z, _ in prev), sum(z for z, _ in curr)
        log.info(f"Applied `{self._pruning_method_name}`. Pruned: {before}/{total} ({before / total:.2%}) ->"
                 f" {after}/{total} ({after / total:.2%})")
        if self._verbose == 2:
            for (module, name), (z0, n0), (z1, n1) in zip(self._parameters_to_prune, prev, curr):
                log.info(f"Applied `{self._pruning_method_name}` to `{module!r}.{name}` with amount={amount}."
                         f" Pruned: {z0} ({z0 / n0:.2%}) -> {z1} ({z1 / n1:.2%})")

    def _run_pruning(self, current_epoch: int) -> None:
        prune_now = self._apply_pruning(current_epoch) if callable(self._apply_pruning) else self._apply_pruning
        amount = self.amount(current_epoch) if callable(self.amount) else self.amount
        if not prune_now or not amount:
            return
        self.apply_pruning(amount)
        lottery = self._use_lottery_ticket_hypothesis
        if lottery(current_epoch) if callable(lottery) else lottery:
            self.apply_lottery_ticket_hypothesis()

    # -- hooks ------------------------------------------------------------------------------------------------------
    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if self._prune_on_train_epoch_end:
            self._run_pruning(pl_module.current_epoch)

    def on_validation_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking and not self._prune_on_train_epoch_end:
            self._run_pruning(pl_module.current_epoch)

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        if self._make_pruning_permanent:
            self.make_pruning_permanent(pl_module)

    def _make_pruning_permanent_on_state_dict(self, pl_module: nn.Module) -> Dict[str, Any]:
        state_dict = pl_module.state_dict()
        for name in {k[: -len("_mask")] for k in state_dict if k.endswith("_mask")}:
            orig = state_dict.pop(name + "_orig")
            mask = state_dict.pop(name + "_mask")
            state_dict[name] = mask.to(dtype=orig.dtype) * orig
        return {k: v.cpu() if isinstance(v, Tensor) else v for k, v in state_dict.items()}

    def on_save_checkpoint(self, trainer: Any, pl_module: Any, checkpoint: Dict[str, Any]) -> None:
        if self._make_pruning_permanent:
            checkpoint["state_dict"] = self._make_pruning_permanent_on_state_dict(pl_module)
