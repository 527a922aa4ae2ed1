"""RichModelSummary: ModelSummary's table drawn with rich (Lightning's columns and totals grid)."""
import importlib.util
from typing import Any, List, Tuple

from torch import nn

from .model_summary import ModelSummary, _PRECISION_BITS, _count, get_human_readable_count, summary_columns

# columns right-aligned as in Lightning's rich table
_RIGHT = {"Params", "Params per Device", "In sizes", "Out sizes"}


class RichModelSummary(ModelSummary):
    """Print the model summary at fit start as a rich table.

    Args:
        max_depth: nesting depth of the layers listed: 1 direct children, -1 every module, 0 no summary.
        **summarize_kwargs: `header_style` (rich style of the header row, default "bold magenta").
    """

    def __init__(self, max_depth: int = 1, **summarize_kwargs: Any) -> None:
        if importlib.util.find_spec("rich") is None:  # at construction, as in Lightning; imported when drawn
            raise ModuleNotFoundError(
                "`RichModelSummary` requires `rich` to be installed. Install it by running `pip install -U rich`."
            )
        super().__init__(max_depth, **summarize_kwargs)

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self._max_depth or not getattr(trainer, "is_global_zero", True):
            return
        cols = summary_columns(pl_module, self._max_depth)
        self.last_summary = self.render(pl_module, cols, getattr(trainer, "precision", "32-true"))

    def render(self, model: nn.Module, cols: List[Tuple[str, List[str]]], precision: Any = "32-true") -> str:
        """Print the table and the totals grid on rich's console; return the plain text printed."""
        from rich import get_console
        from rich.table import Table

        console = get_console()
        table = Table(header_style=self._summarize_kwargs.get("header_style", "bold magenta"))
        for title, _ in cols:
            if title == " ":
                table.add_column(" ", style="dim")
            elif title == "Name":
                table.add_column("Name", justify="left", no_wrap=True)
            elif title in ("In sizes", "Out sizes"):
                table.add_column(title, justify="right", style="white")
            else:
                table.add_column(title, justify="right" if title in _RIGHT else "left")
        for row in zip(*(values for _, values in cols)):
            table.add_row(*row)

        total = _count(model.parameters())
        trainable = _count(p for p in model.parameters() if p.requires_grad)
        size_mb = total * _PRECISION_BITS.get(str(precision), 32) / 8 * 1e-6
        modes = [m.training for m in model.modules()][1:]
        grid = Table.grid(expand=True)
        grid.add_column()
        grid.add_column()
        grid.add_row(f"[bold]Trainable params[/]: {get_human_readable_count(trainable):<10}")
        grid.add_row(f"[bold]Non-trainable params[/]: {get_human_readable_count(total - trainable):<10}")
        grid.add_row(f"[bold]Total params[/]: {get_human_readable_count(total):<10}")
        grid.add_row(f"[bold]Total estimated model params size (MB)[/]: {f'{size_mb:,.3f}':<10}")
        grid.add_row(f"[bold]Modules in train mode[/]: {modes.count(True)}")
        grid.add_row(f"[bold]Modules in eval mode[/]: {modes.count(False)}")

        console.print(table)
        console.print(grid)
        with console.capture() as captured:  # the same text, kept for callers that read `last_summary`
            console.print(table)
            console.print(grid)
        return captured.get()
