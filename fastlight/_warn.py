"""fastlight's warnings point at the user's line, not at fastlight's.

`warn` finds the first frame of the call stack outside the fastlight package (and outside the import machinery,
so a warning raised while `import fastlight` runs points at that import) and issues the warning there (warnings.warn_explicit: what
warnings.warn(stacklevel=N) does, with N found by walking out of the package). Python's default filter then shows each warning once
per user line: a warning raised on every step of a fit is shown once, at the user's `trainer.fit(...)`.
Free of fastlight imports so that every layer (ops included) may use it.
"""
import os
import sys
import warnings
from types import FrameType
from typing import Optional

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_internal(filename: str) -> bool:
    if filename.startswith("<frozen importlib"):  # `import fastlight` running: blame the importing line
        return True
    return os.path.abspath(filename).startswith(_PACKAGE_DIR)


def user_frame(start: Optional[FrameType] = None) -> Optional[FrameType]:
    """The innermost frame (from `start`, default: the caller's) whose code lives outside fastlight, or None."""
    frame = start if start is not None else sys._getframe(1)
    while frame is not None and _is_internal(frame.f_code.co_filename):
        frame = frame.f_back
    return frame


def warn(message, category: type = UserWarning) -> None:
    """warnings.warn(message, category) located at the first frame outside fastlight (see the module docstring)."""
    frame = user_frame(sys._getframe(1))
    if frame is None:  # no user code on the stack (a thread fastlight started): blame the caller
        frame = sys._getframe(1)
    if isinstance(message, Warning):
        category = type(message)
    g = frame.f_globals
    warnings.warn_explicit(
        message,
        category,
        frame.f_code.co_filename,
        frame.f_lineno,
        module=g.get("__name__", "<unknown>"),
        registry=g.setdefault("__warningregistry__", {}),
        # no module_globals: the source line is read from the file (a `python -c` __main__'s loader cannot give it)
    )
