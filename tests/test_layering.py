"""Import directions between fastlight's packages (DESIGN.md "Layers", PREAMBLE.md "Layers").

Every fastlight/**/*.py is parsed, never imported, and every import in it is checked against LAYERS: module-level
imports, imports inside functions (lazy ones count too), imports under `if TYPE_CHECKING:`, and
`importlib.import_module("fastlight...")` / `__import__` with a literal name. A failure lists each offending file, line
and import statement.

A new package is one line in LAYERS. A file in a package that has no line fails the test, so the rule is decided when
the package is added, not discovered later.
"""
import ast
import sys
from pathlib import Path
from typing import Iterator, List, Optional, Set, Tuple, Union

import pytest

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "fastlight"

ROOT = "fastlight"  # the package root, fastlight/__init__.py: importing it pulls in every public name
EVERYTHING = "everything"
ANY = "any"

# layer: (the other fastlight layers it may import, the third-party packages it may import)
# The standard library is always allowed; a layer may always import itself.
LAYERS = {
    "ops": ({"_C", "_build", "_build_info", "_warn"}, {"torch"}),  # THE dispatch point: the native library (_C) or pure-torch references
    "engine": ({"ops", "utilities"}, {"torch"}),  # flat buffers, fused optimizers, loss scaler: never sees a module
    "optim": ({"engine", "ops", "utilities"}, {"torch"}),  # public names of the engine's fused optimizers
    "strategies": ({"utilities", "accelerators"}, {"torch"}),  # accelerators: the device probes
    "accelerators": ({"utilities"}, ANY),
    "plugins": ({"trainer", "strategies", "utilities"}, ANY),  # Lightning's plugin names over the trainer's classes  # Lightning's accelerator classes: what a device kind can do
    "core": ({"utilities"}, ANY),  # the user surface: no kernels, no loop
    "callbacks": ({"core", "utilities"}, ANY),
    "loggers": ({"core", "utilities"}, ANY),
    # Lightning's `loops` import path: the loop counters (the real ones), _Loop, the data fetchers (the dataloader_iter
    # step flavour) and, lazily, the names of the trainer's loops
    "loops": ({"trainer", "utilities"}, set()),
    "profilers": (set(), ANY),  # Lightning's profiler interface; the trainer calls it
    "utilities": ({"_warn"}, ANY),
    "trainer": (EVERYTHING, ANY),  # where the surface and the engine meet
    "overrides": ({"strategies"}, set()),  # Lightning's `overrides` import path: names of fastlight's wrappers
    "tuner": ({"trainer", "core", "callbacks", "utilities"}, ANY),  # Tuner: runs the tuning callbacks in a fit
    "cli": ({"trainer", "core", "callbacks", "loggers", "profilers", "strategies", "utilities"}, ANY),  # LightningCLI
    "demos": ({"core", "utilities"}, ANY),  # BoringModel & co.: user-level modules, no trainer or kernels
    "benchmarks": (EVERYTHING, ANY),  # the shipped benchmark suite; nothing in fastlight imports it
    "_build": (set(), ANY),  # setup.py loads it before the package exists
    "_warn": (set(), set()),  # warnings located at the user's line (ops and utilities use it)
    "_build_info": (set(), set()),  # written by the build: the torch the extension was built against
    ROOT: (EVERYTHING, ANY),  # re-exports the public API
    "_alias": (EVERYTHING, ANY),  # the import hook serving Lightning's names from fastlight
    "__main__": (EVERYTHING, ANY),  # `python -m fastlight run`: the hook, then the user's script
}
NATIVE_MODULES = {"_C", "_build_info"}  # compiled, so no .py file to find (and absent before the extension is built)
ALWAYS_ALLOWED = set(sys.stdlib_module_names) | {"__main__"}


def layer_of_file(rel_path: str) -> str:
    """"fastlight/core/saving.py" -> "core"; "fastlight/_build.py" -> "_build"; "fastlight/__init__.py" -> ROOT."""
    parts = Path(rel_path).parts
    assert parts[0] == ROOT, rel_path
    if len(parts) == 2:
        name = Path(parts[1]).stem
        return ROOT if name == "__init__" else name
    return parts[1]


def package_of_file(rel_path: str) -> str:
    """The dotted package a relative import in `rel_path` starts from."""
    parts = list(Path(rel_path).with_suffix("").parts)
    return ".".join(parts[:-1])


def _is_submodule_of_root(name: str) -> bool:
    return name in LAYERS or name in NATIVE_MODULES or (PACKAGE_DIR / name).is_dir() or (PACKAGE_DIR / f"{name}.py").is_file()


def layer_of_module(dotted: str) -> str:
    """"fastlight.trainer.checkpoint_layout" -> "trainer"; "fastlight" -> ROOT."""
    parts = dotted.split(".")
    return ROOT if len(parts) == 1 else parts[1]


def imported_modules(node: ast.AST, package: str) -> List[str]:
    """The absolute module names an import node brings in (for `from fastlight import x`, fastlight.x when x is a
    submodule, else fastlight itself)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if isinstance(node, ast.ImportFrom):
        if node.level:
            base = package.split(".")
            base = base[: len(base) - (node.level - 1)]
            module = ".".join(base + ([node.module] if node.module else []))
        else:
            module = node.module or ""
        if module == ROOT:
            return [f"{ROOT}.{a.name}" if _is_submodule_of_root(a.name) else ROOT for a in node.names]
        return [module]
    return []


def _literal_import_call(node: ast.AST) -> Optional[str]:
    """The module name of importlib.import_module("...") or __import__("...") with a literal string, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    func = node.func
    name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
    arg = node.args[0]
    if name in ("import_module", "__import__") and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
        return arg.value
    return None


def _permitted(allowed: Union[Set[str], str], name: str) -> bool:
    return allowed in (EVERYTHING, ANY) or name in allowed  # type: ignore[operator]


def _describe(allowed: Union[Set[str], str]) -> str:
    if allowed in (EVERYTHING, ANY):
        return str(allowed)
    return ", ".join(sorted(allowed)) or "nothing"  # type: ignore[arg-type]


def import_violations(rel_path: str, source: str) -> List[str]:
    """One line per import in `source` (the file at `rel_path`) that breaks LAYERS: "file:line: `import ...`: why"."""
    layer = layer_of_file(rel_path)
    if layer not in LAYERS:
        return [f"{rel_path}: no layering rule for fastlight/{layer}: add one line to LAYERS in {Path(__file__).name}"]
    may_import, third_party = LAYERS[layer]
    package = package_of_file(rel_path)
    lines = source.splitlines()
    problems = []
    for node in ast.walk(ast.parse(source, filename=rel_path)):
        call_target = _literal_import_call(node)
        modules = [call_target] if call_target else imported_modules(node, package)
        for module in modules:
            top = module.split(".")[0]
            if top == ROOT:
                target = layer_of_module(module)
                if target == layer or _permitted(may_import, target):
                    continue
                why = f"{layer} may not import {'the package root' if target == ROOT else target}"
                why += f" (allowed: {_describe(may_import)})"
            elif top in ALWAYS_ALLOWED or _permitted(third_party, top):
                continue
            else:
                why = f"{layer} may not import the third-party package {top} (allowed: {_describe(third_party)})"
            statement = lines[node.lineno - 1].strip()
            problems.append(f"{rel_path}:{node.lineno}: `{statement}`: {why}")
    return problems


def native_calls_outside_ops(rel_path: str, source: str) -> List[str]:
    """`torch.ops.fastlight` used outside fastlight/ops (PREAMBLE: everything else calls fastlight.ops.*)."""
    if layer_of_file(rel_path) == "ops":
        return []
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source, filename=rel_path)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr == ROOT
            and isinstance(node.value, ast.Attribute)
            and node.value.attr == "ops"
            and isinstance(node.value.value, ast.Name)
            and node.value.value.id == "torch"
        ):
            found.append(f"{rel_path}:{node.lineno}: `{lines[node.lineno - 1].strip()}`: only fastlight/ops calls torch.ops.fastlight")
    return found


def package_files() -> Iterator[Tuple[str, str]]:
    for path in sorted(PACKAGE_DIR.rglob("*.py")):
        yield path.relative_to(PACKAGE_DIR.parent).as_posix(), path.read_text(encoding="utf-8")


def test_every_fastlight_import_points_down_the_layers():
    files = list(package_files())
    assert len(files) > 10, f"found only {len(files)} files under {PACKAGE_DIR}"
    problems = [p for rel, src in files for p in import_violations(rel, src)]
    assert not problems, "imports against the layer rules (tests/test_layering.py LAYERS):\n" + "\n".join(problems)


def test_only_ops_touches_the_native_library():
    problems = [p for rel, src in package_files() for p in native_calls_outside_ops(rel, src)]
    assert not problems, "\n".join(problems)


# -- the checker itself: each rule catches what it should and lets the rest through ------------------------------------
@pytest.mark.parametrize(
    "rel_path, source, expected",
    [
        # lazy import in a function, absolute: core must not see the trainer
        ("fastlight/core/saving.py", "import os\n\ndef f():\n    from fastlight.trainer.checkpoint_io import load\n",
         ["fastlight/core/saving.py:4: `from fastlight.trainer.checkpoint_io import load`: core may not import trainer"]),
        # relative import reaching up into the engine
        ("fastlight/callbacks/x.py", "from ..engine import flat_buffer\n", ["fastlight/callbacks/x.py:1: `from ..engine import flat_buffer`: callbacks may not import engine"]),
        ("fastlight/loggers/x.py", "from fastlight import ops\n", ["loggers may not import ops"]),
        ("fastlight/core/x.py", "import fastlight\n", ["core may not import the package root"]),
        ("fastlight/core/x.py", "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import fastlight.trainer\n", ["x.py:3: `import fastlight.trainer`"]),
        ("fastlight/engine/x.py", "from fastlight.core.module import LightningModule\n", ["engine may not import core"]),
        ("fastlight/engine/x.py", "import importlib\nm = importlib.import_module('fastlight.callbacks')\n", ["x.py:2:", "engine may not import callbacks"]),
        ("fastlight/ops/x.py", "import numpy\n", ["ops may not import the third-party package numpy"]),
        ("fastlight/ops/x.py", "from fastlight.utilities import rank_zero\n", ["ops may not import utilities"]),
        ("fastlight/strategies/x.py", "from fastlight.core import LightningModule\n", ["strategies may not import core"]),
        ("fastlight/utilities/x.py", "from fastlight.callbacks.callback import Callback\n", ["utilities may not import callbacks"]),
        ("fastlight/newpkg/x.py", "import os\n", ["no layering rule for fastlight/newpkg"]),
        # allowed
        ("fastlight/ops/_loader.py", "import os\nimport torch\nfrom .. import _build\nfrom .. import _C\nfrom . import reference\n", []),
        ("fastlight/engine/x.py", "import torch\nfrom fastlight import ops\nfrom ..utilities.rank_zero import rank_zero_warn\n", []),
        ("fastlight/strategies/x.py", "import torch.distributed\nfrom fastlight.utilities import rank_zero\nimport __main__\n", []),
        ("fastlight/loggers/x.py", "import yaml\nfrom fastlight.core.saving import save_hparams_to_yaml\nfrom .logger import Logger\n", []),
        ("fastlight/trainer/x.py", "import fastlight\nfrom fastlight.engine import x\nfrom fastlight.callbacks import y\n", []),
        ("fastlight/__init__.py", "from .trainer import Trainer\nfrom fastlight.core import LightningModule\n", []),
    ],
)
def test_layer_checker_reports_file_line_and_import(rel_path, source, expected):
    problems = import_violations(rel_path, source)
    if not expected:
        assert problems == []
        return
    assert len(problems) == 1, problems
    for part in expected:
        assert part in problems[0]


def test_native_library_check_flags_torch_ops_fastlight_outside_ops():
    source = "import torch\n\ndef f(t):\n    return torch.ops.fastlight.grad_stats(t)\n"
    assert native_calls_outside_ops("fastlight/engine/x.py", source) == [
        "fastlight/engine/x.py:4: `return torch.ops.fastlight.grad_stats(t)`: only fastlight/ops calls torch.ops.fastlight"
    ]
    assert native_calls_outside_ops("fastlight/ops/__init__.py", source) == []
