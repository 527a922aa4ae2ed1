"""`_Loop`: Lightning's base for a loop object whose state is its progress counters and its child loops.

fastlight's own loops (trainer/fit_loop.py, trainer/evaluation.py) are not built from nested loop objects; this base
is for code that writes its own loop in Lightning's style. A loop's `state_dict` gathers, under dotted keys, what
`on_save_checkpoint` returns ("<prefix>state_dict"), each `_BaseProgress` attribute ("<prefix><name>") and, recursively,
each child loop ("<prefix><name>."); `load_state_dict` puts them back and marks the loop tree as restarting.
"""
from typing import Any, Dict, Optional

from fastlight.loops.progress import _BaseProgress


class _Loop:
    def __init__(self, trainer: Any) -> None:
        self._restarting = False
        self._loaded_from_state_dict = False
        self._resuming_from_checkpoint = False
        self.trainer = trainer

    @property
    def restarting(self) -> bool:
        """The loop's state was loaded and it continues from there."""
        return self._restarting

    @restarting.setter
    def restarting(self, restarting: bool) -> None:
        self._restarting = restarting
        for child in self._children().values():
            child.restarting = restarting

    @property
    def is_resuming(self) -> bool:
        """The state came from a checkpoint (not yet a finished iteration since)."""
        return self._resuming_from_checkpoint

    def _children(self) -> Dict[str, "_Loop"]:
        return {name: value for name, value in vars(self).items() if isinstance(value, _Loop)}

    def reset_restart_stage(self) -> None:
        """Forget where a restart came from (after the first iteration ran)."""

    def on_save_checkpoint(self) -> Dict[str, Any]:
        """The loop's own state beyond its counters (saved under "<prefix>state_dict")."""
        return {}

    def on_load_checkpoint(self, state_dict: Dict[str, Any]) -> None:
        """Take back what `on_save_checkpoint` returned."""

    def state_dict(self, destination: Optional[Dict[str, Any]] = None, prefix: str = "") -> Dict[str, Any]:
        out = {} if destination is None else destination
        out[prefix + "state_dict"] = self.on_save_checkpoint()
        for name, value in vars(self).items():
            if isinstance(value, _BaseProgress):
                out[prefix + name] = value.state_dict()
            elif isinstance(value, _Loop):
                value.state_dict(out, f"{prefix}{name}.")
        return out

    def load_state_dict(self, state_dict: Dict[str, Any], prefix: str = "") -> None:
        self._load_from_state_dict(dict(state_dict), prefix)
        for name, child in self._children().items():
            child.load_state_dict(dict(state_dict), f"{prefix}{name}.")
        self.restarting = True
        self._loaded_from_state_dict = True
        self._resuming_from_checkpoint = True

    def _load_from_state_dict(self, state_dict: Dict[str, Any], prefix: str) -> None:
        for name, value in vars(self).items():
            key = prefix + name
            if isinstance(value, _BaseProgress) and key in state_dict:  # a key missing: an older checkpoint
                value.load_state_dict(state_dict[key])
        if prefix + "state_dict" in state_dict:
            self.on_load_checkpoint(state_dict[prefix + "state_dict"])

    def on_iteration_done(self) -> None:
        """An iteration finished: the loop is no longer restarting."""
        self._restarting = False
        self._loaded_from_state_dict = False
        self._resuming_from_checkpoint = False
        self.reset_restart_stage()
