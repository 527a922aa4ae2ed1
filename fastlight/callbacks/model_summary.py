"""ModelSummary: print a table of the model's layers at fit start (Lightning's layout, without the FLOPs column)."""
import logging
import math
from collections import OrderedDict
from typing import Any, Dict, List, Tuple

import torch
from torch import nn

from .callback import Callback

log = logging.getLogger(__name__)

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


def summary_columns(model: nn.Module, max_depth: int = 1) -> List[Tuple[str, List[str]]]:
    """The table's columns: index, Name, Type, Params, Mode, and In/Out sizes when the model has an
    `example_input_array` (found with one no-grad forward in eval mode)."""
    if max_depth == 0:
        layers: List[Tuple[str, nn.Module]] = []
    elif max_depth == 1:
        layers = list(model.named_children())
    else:
        layers = list(model.named_modules())[1:]
        if max_depth > 0:
            layers = [(n, m) for n, m in layers if n.count(".") < max_depth]
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
            def hook(_m: nn.Module, inp: Any, out: Any, name: str = name) -> None:
                inp = inp[0] if isinstance(inp, tuple) and len(inp) == 1 else inp
                sizes[name] = (_shape_of(inp), _shape_of(out))

            handles.append(module.register_forward_hook(hook))
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
            for h in handles:
                h.remove()
            for m, training in modes.items():
                m.training = training
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


class ModelSummary(Callback):
    """Log the model summary at fit start on rank 0.

    Args:
        max_depth: nesting depth of the layers listed: 1 direct children, -1 every module, 0 no summary.
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        if not isinstance(max_depth, int) or max_depth < -1:
            raise ValueError(f"`max_depth` can be -1, 0 or > 0, got {max_depth}.")
        self._max_depth = max_depth
        self._summarize_kwargs = summarize_kwargs
        self.last_summary: str = ""

    def summary(self, trainer: Any, pl_module: nn.Module) -> str:
        cols = summary_columns(pl_module, self._max_depth)
        return format_summary_table(pl_module, cols, getattr(trainer, "precision", "32-true"))

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._max_depth or not getattr(trainer, "is_global_zero", True):
            return
        self.last_summary = self.summary(trainer, pl_module)
        log.info("\n" + self.last_summary)
