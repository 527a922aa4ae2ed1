"""A minimal progress bar and model summary, so the defaults print something useful.

The callbacks issue brings the full TQDMProgressBar/RichProgressBar/ModelSummary; these two are replaced by
any callback that sets `_is_progress_bar` / `_is_model_summary`.
"""
import sys
import time
from typing import Any


from fastlight.callbacks.callback import Callback


def _format_count(n: int) -> str:
    for unit, div in (("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= div:
            return f"{n / div:.1f} {unit}"
    return str(n)


class ModelSummary(Callback):
    """Prints the top-level submodules with their parameter counts at the start of fit."""

    _is_model_summary = True

    def __init__(self, max_depth: int = 1) -> None:
        self.max_depth = max_depth

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.is_global_zero:
            return
        rows = [("", "Name", "Type", "Params", "Mode")]
        for i, (name, child) in enumerate(pl_module.named_children()):
            n = sum(p.numel() for p in child.parameters())
            rows.append((str(i), name, type(child).__name__, _format_count(n), "train" if child.training else "eval"))
        params = list(pl_module.parameters())
        total = sum(p.numel() for p in params)
        trainable = sum(p.numel() for p in params if p.requires_grad)
        widths = [max(len(r[c]) for r in rows) for c in range(5)]
        line = lambda r: " | ".join(v.ljust(w) for v, w in zip(r, widths))  # noqa: E731
        out = [line(rows[0]), "-" * len(line(rows[0]))] + [line(r) for r in rows[1:]]
        out += ["-" * len(line(rows[0])),
                f"{_format_count(trainable):<10} Trainable params",
                f"{_format_count(total - trainable):<10} Non-trainable params",
                f"{_format_count(total):<10} Total params",
                f"{total * 4 / 1e6:<10.3f} Total estimated model params size (MB)"]
        print("\n".join(out), file=sys.stdout)


class ProgressBar(Callback):
    """One status line per stage, rewritten in place at most `refresh_rate` times per second.

    Cost per batch: a counter and a clock read; metric values are converted to numbers (a host sync) only when
    the line is redrawn."""

    _is_progress_bar = True

    def __init__(self, refresh_per_second: float = 4.0) -> None:
        self.min_interval = 1.0 / refresh_per_second
        self._last = 0.0
        self._enabled = True

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
        if not trainer.is_global_zero:  # one bar per run: rank 0's
            self.disable()

    def _draw(self, text: Any, final: bool = False) -> None:
        if not self._enabled:
            return
        text = text() if callable(text) else text  # built only when drawn: reading metrics costs a host sync
        sys.stdout.write("\r" + text[:200].ljust(80) + ("\n" if final else ""))
        sys.stdout.flush()

    def _metrics_text(self, trainer: Any) -> str:
        metrics = trainer.progress_bar_metrics  # host sync: the bar prints numbers (only when redrawn)
        parts = [f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items()]
        if trainer.logger is not None and getattr(trainer.logger, "version", None) is not None:
            parts.insert(0, f"v_num={trainer.logger.version}")
        return ", ".join(parts)

    def _line(self, trainer: Any, label: str, i: int, total: Any) -> str:
        total_s = "?" if total in (None, float("inf")) else str(int(total))
        return f"{label}: {i}/{total_s} {self._metrics_text(trainer)}"

    def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
        self._epoch_t0 = time.monotonic()

    def on_train_batch_end(self, trainer: Any, pl_module: Any, outputs: Any, batch: Any, batch_idx: int) -> None:
        now = time.monotonic()
        if now - self._last < self.min_interval:
            return
        self._last = now
        self._draw(lambda: self._line(trainer, f"Epoch {trainer.current_epoch}", batch_idx + 1,
                                      trainer.num_training_batches))

    def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
        n = trainer.num_training_batches
        self._draw(lambda: self._line(trainer, f"Epoch {trainer.current_epoch}", n if n != float("inf") else 0, n),
                   final=True)
        self._last = 0.0

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if not trainer.sanity_checking and trainer.state.fn != "fit":
            self._draw(lambda: f"Validation done {self._metrics_text(trainer)}", final=True)

    def on_test_end(self, trainer: Any, pl_module: Any) -> None:
        self._draw("Testing done", final=True)

    def on_predict_end(self, trainer: Any, pl_module: Any) -> None:
        self._draw("Predicting done", final=True)
