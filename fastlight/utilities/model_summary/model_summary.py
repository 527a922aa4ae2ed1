"""The model summary table (`lightning.pytorch.utilities.model_summary`): layers, types, parameter counts, modes,
and input/output sizes when the model has an `example_input_array`. The ModelSummary callback prints it at fit
start; `summarize(model)` / `ModelSummary(model)` build it on demand."""
import math
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

_UNITS = [" ", "K", "M", "B", "T"]
_PRECISION_BITS = {"64": 64, "32": 32, "16": 16, "bf16": 16, "16-true": 16, "bf16-true": 16, "32-true": 32, "64-true": 64}


def get_human_readable_count(number: float) -> str:
    """123 -> '123  ', 1234 -> '1.2 K', 2e6 -> '2.0 M' (Lightning's format)."""
    if number < 0:
        raise ValueError(f"get_human_readable_count needs a count >= 0, got {number}")
    digits = int(math.floor(math.log10(number)) + 1 if number > 0 else 1)
    groups = min(int(math.ceil(digits / 3)), len(_UNITS))
    number = number * 10 ** (-3 * (groups - 1))
    index = groups - 1
    if index < 1 or number >= 100:
        return f"{int(number):,d} {_UNITS[index]}"
    return f"{number:,.1f} {_UNITS[index]}"


def _count(params: Any) -> int:
    return sum(p.numel() for p in params if not isinstance(p, nn.parameter.UninitializedParameter))


def _shape_of(x: Any) -> Any:
    if hasattr(x, "shape"):
        return list(x.shape)
    if isinstance(x, (list, tuple)):
        return [_shape_of(el) for el in x]
    return "?"


UNKNOWN_SIZE = "?"  # a size the summary could not find (no example input, or not a tensor)


def _layer_input(args: tuple, kwargs: dict) -> Any:
    """What a layer was called with, positional and keyword inputs together (one input: itself)."""
    inputs = list(args) + list(kwargs.values())
    return inputs[0] if len(inputs) == 1 else inputs


def _layers(model: nn.Module, max_depth: int) -> List[Tuple[str, nn.Module]]:
    """The (name, module) rows of the table: none at depth 0, the direct children at 1, every module at -1."""
    if max_depth == 0:
        return []
    if max_depth == 1:
        return list(model.named_children())
    layers = list(model.named_modules())[1:]
    return layers if max_depth < 0 else [(n, m) for n, m in layers if n.count(".") < max_depth]


def _forward_example(model: nn.Module, example: Any) -> None:
    """One no-grad forward pass over `example` in eval mode (each module's mode is put back afterwards)."""
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            if isinstance(example, (list, tuple)):
                model(*example)
            elif isinstance(example, dict):
                model(**example)
            else:
                model(example)
    finally:
        for m, training in modes.items():
            m.training = training


def summary_columns(model: nn.Module, max_depth: int = 1) -> List[Tuple[str, List[str]]]:
    """The table's columns: index, Name, Type, Params, Mode, and In/Out sizes when the model has an
    `example_input_array` (found with one no-grad forward in eval mode)."""
    layers = _layers(model, max_depth)
    names = [n for n, _ in layers]
    cols = [
        (" ", [str(i) for i in range(len(layers))]),
        ("Name", names),
        ("Type", [type(m).__name__ for _, m in layers]),
        ("Params", [get_human_readable_count(_count(m.parameters())) for _, m in layers]),
        ("Mode", ["train" if m.training else "eval" for _, m in layers]),
    ]
    example = getattr(model, "example_input_array", None)
    if example is not None and layers:
        sizes: Dict[str, Tuple[Any, Any]] = OrderedDict((n, ("?", "?")) for n in names)
        handles = []
        for name, module in layers:
            def hook(_m: nn.Module, args: Any, kwargs: Any, out: Any, name: str = name) -> None:
                inp = _layer_input(args, kwargs)
                sizes[name] = (_shape_of(inp), _shape_of(out))

            handles.append(module.register_forward_hook(hook, with_kwargs=True))
        try:
            _forward_example(model, example)
        finally:
            for h in handles:
                h.remove()
        cols.append(("In sizes", [str(sizes[n][0]) for n in names]))
        cols.append(("Out sizes", [str(sizes[n][1]) for n in names]))
    leftover = _count(model.parameters()) - sum(_count(m.parameters()) for _, m in layers)
    if leftover > 0 and max_depth != 0:
        extra = {" ": " ", "Name": "other params", "Type": "n/a", "Params": get_human_readable_count(leftover)}
        for title, values in cols:
            values.append(extra.get(title, "n/a"))
    return cols


def format_summary_table(model: nn.Module, cols: List[Tuple[str, List[str]]], precision: Any = "32-true") -> str:
    total = _count(model.parameters())
    trainable = _count(p for p in model.parameters() if p.requires_grad)
    bits = _PRECISION_BITS.get(str(precision), 32)
    size_mb = total * bits / 8 * 1e-6
    modes = [m.training for m in model.modules()][1:]
    n_rows = len(cols[0][1]) if cols else 0
    widths = [max([len(t)] + [len(str(v)) for v in values]) for t, values in cols]
    total_width = sum(widths) + 3 * (1 + len(cols))
    lines = [" | ".join(f"{t:<{w}}" for (t, _), w in zip(cols, widths)), "-" * total_width]
    for i in range(n_rows):
        lines.append(" | ".join(f"{str(values[i]):<{w}}" for (_, values), w in zip(cols, widths)))
    lines.append("-" * total_width)
    lines.append(f"{get_human_readable_count(trainable):<10}Trainable params")
    lines.append(f"{get_human_readable_count(total - trainable):<10}Non-trainable params")
    lines.append(f"{get_human_readable_count(total):<10}Total params")
    lines.append(f"{f'{size_mb:,.3f}':<10}Total estimated model params size (MB)")
    lines.append(f"{modes.count(True):<10}Modules in train mode")
    lines.append(f"{modes.count(False):<10}Modules in eval mode")
    return "\n".join(lines)



def parse_batch_shape(batch: Any) -> Any:
    """The shape of a tensor as a list, nested like the (list/tuple) batch; "?" for anything else."""
    return _shape_of(batch)


def get_formatted_model_size(total_model_size: float) -> str:
    """A size in MB as the summary prints it: three decimals, thousands separated."""
    return f"{total_model_size:,.3f}"


def _precision_of(model: nn.Module) -> Any:
    trainer = getattr(model, "_trainer", None)
    return getattr(trainer, "precision", "32-true") if trainer is not None else "32-true"


class LayerSummary:
    """One layer of the summary: its type, parameter count, mode, and (after a forward pass while attached) the
    sizes of its input and output."""

    def __init__(self, module: nn.Module) -> None:
        self._module = module
        self._in_size: Any = "?"
        self._out_size: Any = "?"
        self._hook_handle = module.register_forward_hook(self._record, with_kwargs=True)

    def _record(self, _module: nn.Module, args: Any, kwargs: Any, out: Any) -> None:
        inp = _layer_input(args, kwargs)
        self._in_size, self._out_size = _shape_of(inp), _shape_of(out)
        self.detach_hook()

    def detach_hook(self) -> None:
        if self._hook_handle is not None:
            self._hook_handle.remove()
            self._hook_handle = None

    def __del__(self) -> None:
        self.detach_hook()

    @property
    def in_size(self) -> Any:
        return self._in_size

    @property
    def out_size(self) -> Any:
        return self._out_size

    @property
    def layer_type(self) -> str:
        return type(self._module).__name__

    @property
    def num_parameters(self) -> int:
        return _count(self._module.parameters())

    @property
    def training(self) -> bool:
        return self._module.training


class ModelSummary:
    """The summary of `model` down to `max_depth` (1: direct children, -1: every module, 0: totals only).

    `str(summary)` is the table the ModelSummary callback prints; the properties give its columns and totals.
    """

    def __init__(self, model: nn.Module, max_depth: int = 1) -> None:
        if not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(f"`max_depth` can be -1, 0 or > 0, got {max_depth}.")
        self._model = model
        self._max_depth = max_depth
        self._cols = summary_columns(model, max_depth)

    def _col(self, title: str) -> List[str]:
        return next((values for t, values in self._cols if t == title), [])

    @property
    def max_depth(self) -> int:
        return self._max_depth

    def summarize(self) -> "OrderedDict[str, LayerSummary]":
        """One LayerSummary per row, with the input/output sizes of one forward pass over `example_input_array`
        (when the model has one); the hooks recording them are removed afterwards."""
        summaries = OrderedDict((name, LayerSummary(module)) for name, module in self.named_modules)
        example = getattr(self._model, "example_input_array", None)
        if example is not None and summaries:
            _forward_example(self._model, example)
        for layer in summaries.values():
            layer.detach_hook()
        return summaries

    @property
    def named_modules(self) -> List[Tuple[str, nn.Module]]:
        return _layers(self._model, self._max_depth)

    @property
    def layer_names(self) -> List[str]:
        return [name for name, _ in self.named_modules]

    @property
    def layer_types(self) -> List[str]:
        return [type(m).__name__ for _, m in self.named_modules]

    @property
    def in_sizes(self) -> List[Any]:
        return self._sizes(0)

    @property
    def out_sizes(self) -> List[Any]:
        return self._sizes(1)

    def _sizes(self, which: int) -> List[Any]:
        col = self._col("In sizes" if which == 0 else "Out sizes")[: len(self.named_modules)]
        return [_literal(v) for v in col] if col else ["?"] * len(self.named_modules)

    @property
    def param_nums(self) -> List[int]:
        return [_count(m.parameters()) for _, m in self.named_modules]

    @property
    def training_modes(self) -> List[bool]:
        return [m.training for _, m in self.named_modules]

    @property
    def total_training_modes(self) -> Dict[str, int]:
        modes = [m.training for m in self._model.modules()][1:]
        return {"train": modes.count(True), "eval": modes.count(False)}

    @property
    def total_parameters(self) -> int:
        return _count(self._model.parameters())

    @property
    def trainable_parameters(self) -> int:
        return _count(p for p in self._model.parameters() if p.requires_grad)

    @property
    def total_layer_params(self) -> int:
        return sum(self.param_nums)

    @property
    def model_size(self) -> float:
        """The parameters' size in MB at the trainer's precision (32-bit without a trainer)."""
        bits = _PRECISION_BITS.get(str(_precision_of(self._model)), 32)
        return self.total_parameters * bits / 8 * 1e-6

    def __str__(self) -> str:
        return format_summary_table(self._model, self._cols, _precision_of(self._model))

    def __repr__(self) -> str:
        return str(self)


def _literal(text: str) -> Any:
    try:
        import ast

        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def summarize(lightning_module: nn.Module, max_depth: int = 1) -> ModelSummary:
    """The ModelSummary of `lightning_module` down to `max_depth`."""
    return ModelSummary(lightning_module, max_depth=max_depth)
