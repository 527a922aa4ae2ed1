"""Import a user's LightningModule / LightningDataModule class from `pkg.module:Class` or `path/to/file.py:Class`,
and the same class a second time for the other framework.

fastlight's LightningModule is not a pytorch_lightning one (and the reverse), so a module written with
`import fastlight as pl` cannot be handed to pytorch_lightning's Trainer. `load_for_framework` executes the
user's source again under a private module name while, for the duration of that one import only, the name
`fastlight` (and `fastlight.*`) resolves to pytorch_lightning (or the reverse): a temporary sys.modules entry per
already imported submodule plus a meta-path finder for the others. The user's own modules that were imported
with the original framework are hidden for that import (so they are executed again under the alias) and put
back afterwards; every sys.modules entry the aliasing made is removed again. Imports the user's code makes later,
inside functions, see the real `fastlight`.
"""
import contextlib
import importlib
import importlib.abc
import importlib.util
import inspect
import itertools
import os
import sys
import sysconfig
import types
from typing import Iterator, Optional, Tuple

_counter = itertools.count()

FRAMEWORKS = ("fastlight", "pytorch_lightning")


class LoadError(Exception):
    """A user class could not be loaded; the message names the argument, the file or module, and the cause."""


def parse_spec(spec: str, option: str) -> Tuple[str, str]:
    """"pkg.mod:Cls" -> ("pkg.mod", "Cls"); "dir/file.py:Cls" -> ("dir/file.py", "Cls")."""
    target, sep, attr = spec.rpartition(":")
    if not sep or not target or not attr or not attr.replace("_", "a").isalnum():
        raise LoadError(f"{option} {spec!r}: expected MODULE:CLASS (e.g. mypkg.models:LitModel) or "
                        f"path/to/file.py:CLASS")
    return target, attr


def _is_file_target(target: str) -> bool:
    return target.endswith(".py") or os.sep in target or (os.altsep is not None and os.altsep in target)


def _import_target(target: str, option: str, spec: str) -> types.ModuleType:
    if _is_file_target(target):
        path = os.path.abspath(target)
        if not os.path.isfile(path):
            raise LoadError(f"{option} {spec!r}: no such file: {target}")
        folder = os.path.dirname(path)
        if folder not in sys.path:  # as when the file is run as a script: its siblings are importable
            sys.path.insert(0, folder)
        name = f"_fastlight_bench_user_{next(_counter)}_{os.path.splitext(os.path.basename(path))[0]}"
        return _exec_source(path, name, package=None, option=option, spec=spec)
    try:
        return importlib.import_module(target)
    except ModuleNotFoundError as e:
        if e.name and (target == e.name or target.startswith(e.name + ".")):
            raise LoadError(f"{option} {spec!r}: no module named {e.name!r} (is it on PYTHONPATH, or did you mean "
                            f"a file path like path/to/{target.replace('.', '/')}.py:CLASS?)") from None
        raise LoadError(f"{option} {spec!r}: importing {target} failed: {type(e).__name__}: {e}") from e
    except Exception as e:
        raise LoadError(f"{option} {spec!r}: importing {target} failed: {type(e).__name__}: {e}") from e


def _exec_source(path: str, name: str, package: Optional[str], option: str, spec: str) -> types.ModuleType:
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise LoadError(f"{option} {spec!r}: cannot load {path} as Python source")
    module = importlib.util.module_from_spec(module_spec)
    if package is not None:
        module.__package__ = package  # relative imports resolve against the user's package
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as e:
        sys.modules.pop(name, None)
        if isinstance(e, (KeyboardInterrupt, SystemExit)):
            raise
        raise LoadError(f"{option} {spec!r}: executing {path} failed: {type(e).__name__}: {e}") from e
    return module


def _get_class(module: types.ModuleType, attr: str, option: str, spec: str, where: str) -> type:
    if not hasattr(module, attr):
        classes = sorted(n for n, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__)
        hint = f" (classes defined there: {', '.join(classes)})" if classes else ""
        raise LoadError(f"{option} {spec!r}: {where} has no attribute {attr!r}{hint}")
    cls = getattr(module, attr)
    if not inspect.isclass(cls):
        raise LoadError(f"{option} {spec!r}: {attr} in {where} is a {type(cls).__name__}, not a class")
    return cls


def framework_of(cls: type, kind: str = "LightningModule") -> Optional[str]:
    """"fastlight", "pytorch_lightning" or "lightning" (lightning.pytorch): the framework whose `kind` class `cls`
    derives from (None: none of them)."""
    for base in cls.__mro__:
        if base.__name__ == kind:
            top = base.__module__.split(".")[0]
            if top == "fastlight":
                return "fastlight"
            if top in ("pytorch_lightning", "lightning"):
                return top
    return None


def load_class(spec: str, option: str, kind: str) -> type:
    """The class `spec` names, imported normally. It must derive from fastlight's or pytorch_lightning's `kind`
    (LightningModule or LightningDataModule) or lightning.pytorch's."""
    target, attr = parse_spec(spec, option)
    module = _import_target(target, option, spec)
    cls = _get_class(module, attr, option, spec, target)
    if framework_of(cls, kind) is None:
        bases = ", ".join(f"{b.__module__}.{b.__qualname__}" for b in cls.__mro__[1:-1]) or "object"
        raise LoadError(f"{option} {spec!r}: {attr} is not a {kind} (fastlight or pytorch_lightning); "
                        f"its bases: {bases}")
    cls._fastlight_bench_spec = spec  # type: ignore[attr-defined]  # where it came from, for the second import
    return cls


# ---- the second import, under the other framework's name ----------------------------------------------------------


def _library_dirs() -> Tuple[str, ...]:
    """The standard library's and site-packages' folders (with a trailing separator, for prefix tests)."""
    paths = {sysconfig.get_paths().get(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    try:
        import site

        paths |= set(site.getsitepackages()) | {site.getusersitepackages()}
    except (AttributeError, ImportError):
        pass
    return tuple(os.path.join(os.path.abspath(p), "") for p in paths if p)


def _refers_to(module: types.ModuleType, framework: str) -> bool:
    """Whether a module's globals hold the framework module or something defined in it."""
    for value in list(vars(module).values()):
        if isinstance(value, types.ModuleType):
            name = value.__name__
        else:
            name = getattr(value, "__module__", None)
            if not isinstance(name, str):
                continue
        if name == framework or name.startswith(framework + "."):
            return True
    return False


def _user_modules_using(framework: str) -> dict:
    """sys.modules entries of the user's own code (outside the interpreter's and site-packages' folders) that
    use `framework`: they must be executed again under the alias."""
    libs = _library_dirs()
    found = {}
    for name, module in list(sys.modules.items()):
        if module is None or name == "__main__" or name.split(".")[0] in FRAMEWORKS + ("lightning", "torch"):
            continue
        path = getattr(module, "__file__", None)
        if not path or os.path.abspath(path).startswith(libs):
            continue
        if _refers_to(module, framework):
            found[name] = module
    return found


class _AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Resolves `src.x.y` to the already importable `dst.x.y` (the same module object) during the scope."""

    def __init__(self, src: str, dst: str):
        self.src, self.dst = src, dst
        self._specs = {}

    def find_spec(self, fullname, path=None, target=None):
        if fullname.startswith(self.src + "."):
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        real = importlib.import_module(self.dst + spec.name[len(self.src):])
        self._specs[spec.name] = getattr(real, "__spec__", None)
        return real

    def exec_module(self, module):
        # the import system set __spec__ to the alias's spec; the real module keeps its own
        original = self._specs.get(module.__spec__.name if module.__spec__ else None)
        if original is not None:
            module.__spec__ = original


@contextlib.contextmanager
def aliased(src: str, dst: str) -> Iterator[None]:
    """Within the block, `import src` / `import src.sub` / `from src import X` give `dst`'s modules."""
    dst_module = importlib.import_module(dst)
    owned = [k for k in sys.modules if k == src or k.startswith(src + ".")]
    saved = {k: sys.modules[k] for k in owned}
    hidden = _user_modules_using(src)
    for k in owned + list(hidden):
        sys.modules.pop(k, None)
    sys.modules[src] = dst_module
    for k, m in list(sys.modules.items()):
        if k.startswith(dst + ".") and m is not None:
            sys.modules[src + k[len(dst):]] = m
    finder = _AliasFinder(src, dst)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
        for k in [k for k in sys.modules if k == src or k.startswith(src + ".")]:
            del sys.modules[k]
        sys.modules.update(saved)
        sys.modules.update(hidden)  # the originals replace any copy made under the alias
        for k, m in hidden.items():  # and so do the parent packages' attributes the re-import rebound
            parent, _, child = k.rpartition(".")
            if parent and parent in sys.modules and getattr(sys.modules[parent], child, m) is not m:
                setattr(sys.modules[parent], child, m)


def load_for_framework(cls: type, framework: str, kind: str = "LightningModule") -> type:
    """`cls` (from load_class) as a subclass of `framework`'s `kind`: `cls` itself when it already is, else the
    user's source executed again with the other framework's name aliased to `framework`."""
    current = framework_of(cls, kind)
    if current == framework:
        return cls
    if current == "lightning":
        raise LoadError(f"{cls.__name__} is written for `lightning.pytorch`; the benchmark maps `fastlight` and "
                        f"`pytorch_lightning` onto each other: import one of those (`import fastlight as pl`)")
    spec = getattr(cls, "_fastlight_bench_spec", None)
    module = sys.modules.get(cls.__module__)
    path = getattr(module, "__file__", None)
    if spec is None or not path:
        raise LoadError(f"{cls.__qualname__}: its source file is unknown, so it cannot be loaded for {framework}")
    if cls.__qualname__ != cls.__name__:
        raise LoadError(f"{cls.__qualname__}: a nested class cannot be loaded again for {framework}")
    try:
        importlib.import_module(framework)
    except ImportError as e:
        raise LoadError(f"{framework} is not installed: {e}") from None
    package = None if module.__name__.startswith("_fastlight_bench_user_") else module.__package__
    name = f"_fastlight_bench_{framework}_{next(_counter)}_{cls.__module__.replace('.', '_')}"
    with aliased(current, framework):
        copy = _exec_source(path, name, package, "--model" if kind == "LightningModule" else "--datamodule", spec)
    again = _get_class(copy, cls.__name__, "--model", spec, path)
    if framework_of(again, kind) != framework:
        raise LoadError(
            f"{spec}: loaded again with {current!r} mapped to {framework!r}, {cls.__name__} still derives from "
            f"{framework_of(again, kind)}'s {kind} (its base class is imported from a module the alias does not "
            f"reach); the {framework} candidate needs the class to use `import {current} as pl` or "
            f"`from {current} import ...` in the user's own files")
    return again
