"""Run unmodified Lightning code on fastlight: an import hook that makes Lightning's import names resolve to fastlight.

After `fastlight.alias()` (or under `python -m fastlight run script.py ARGS`, which calls it first):

- `pytorch_lightning` and `lightning.pytorch` are the `fastlight` module, and `pytorch_lightning.X` /
  `lightning.pytorch.X` are `fastlight.X` (the same module objects, so classes and isinstance checks agree
  whichever name the code imports them by);
- `lightning` is a package whose top-level PyTorch names (`L.Trainer`, `L.LightningModule`,
  `L.LightningDataModule`, `L.Callback`, `L.seed_everything`) are fastlight's, `L.pytorch` is fastlight, and every other
  subpackage (`lightning.fabric`, ...) is the installed Lightning's. When the `lightning` distribution is not installed
  the hook provides the package itself, and `lightning.fabric.X` is the installed `lightning_fabric.X` (if any);
- `lightning_fabric` and `lightning_utilities` are left alone.

The hook must be installed before any of those names is imported: fastlight cannot swap classes a program already
holds, so `alias()` refuses (with the modules named) when real Lightning modules are already loaded.
"""
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from typing import Any, List, Optional, Sequence

# Lightning's top-level `lightning` names that are lightning.pytorch's (the rest, e.g. Fabric, come from the installed
# lightning.fabric)
_TOP_LEVEL_PYTORCH_NAMES = ("Callback", "LightningDataModule", "LightningModule", "Trainer", "seed_everything")


def _target(fullname: str) -> Optional[str]:
    """The module `fullname` stands for under the hook, or None when the hook leaves it to the normal import."""
    for prefix in ("pytorch_lightning", "lightning.pytorch"):
        if fullname == prefix:
            return "fastlight"
        if fullname.startswith(prefix + "."):
            return "fastlight" + fullname[len(prefix):]
    return None


class _AliasLoader(importlib.abc.Loader):
    """Loads an alias: the target module itself (imported normally), registered under the alias name too."""

    def __init__(self, alias: str, target: str) -> None:
        self.alias = alias
        self.target = target

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        try:
            module = importlib.import_module(self.target)
        except ModuleNotFoundError as e:
            if e.name is not None and (self.target == e.name or self.target.startswith(e.name + ".")):
                raise ModuleNotFoundError(
                    f"No module named {self.alias!r}: this program runs on fastlight (import hook of"
                    f" fastlight.alias / `python -m fastlight run`), which has no {self.target!r}"
                    " (see docs/compatibility.md)",
                    name=self.alias,
                ) from None
            raise
        self._original_spec = module.__spec__
        return module

    def exec_module(self, module: types.ModuleType) -> None:
        # the import system set __spec__ to the alias's spec; the module keeps its own (relative imports inside it
        # compare __package__ with __spec__.parent)
        module.__spec__ = self._original_spec


class _LightningPackageLoader(importlib.abc.Loader):
    """Creates the `lightning` package: fastlight's PyTorch names on top; subpackages from the installed lightning."""

    def __init__(self, real_spec: Optional[importlib.machinery.ModuleSpec]) -> None:
        self.real_spec = real_spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> Optional[types.ModuleType]:
        return None  # a plain module object

    def exec_module(self, module: types.ModuleType) -> None:
        import fastlight

        module.__doc__ = "Lightning's `lightning` package with its PyTorch part served by fastlight (fastlight.alias)."
        module.pytorch = fastlight  # type: ignore[attr-defined]
        for name in _TOP_LEVEL_PYTORCH_NAMES:
            setattr(module, name, getattr(fastlight, name))
        module.__version__ = fastlight.__version__  # type: ignore[attr-defined]
        module.__all__ = [*_TOP_LEVEL_PYTORCH_NAMES, "Fabric", "__version__"]  # type: ignore[attr-defined]
        module.__getattr__ = _lightning_getattr  # type: ignore[attr-defined]


def _lightning_getattr(name: str) -> Any:
    if name == "Fabric":  # from the installed fabric, as `lightning.Fabric` is
        try:
            return importlib.import_module("lightning.fabric").Fabric
        except ModuleNotFoundError:
            raise AttributeError(
                "module 'lightning' has no attribute 'Fabric': fastlight serves lightning's PyTorch part only and"
                " neither `lightning` nor `lightning_fabric` is installed"
            ) from None
    if not name.startswith("__"):
        try:
            return importlib.import_module(f"lightning.{name}")
        except ModuleNotFoundError:
            pass
    raise AttributeError(f"module 'lightning' has no attribute {name!r}")


class LightningAliasFinder(importlib.abc.MetaPathFinder):
    """sys.meta_path finder that maps Lightning's import names onto fastlight (see the module docstring)."""

    def __init__(self) -> None:
        # the installed `lightning` distribution's spec, found once and without importing it
        self._real_lightning = importlib.machinery.PathFinder.find_spec("lightning")
        self._has_lightning_fabric = importlib.machinery.PathFinder.find_spec("lightning_fabric") is not None

    def find_spec(self, fullname: str, path: Optional[Sequence[str]] = None,
                  target: Optional[types.ModuleType] = None) -> Optional[importlib.machinery.ModuleSpec]:
        aliased = _target(fullname)
        if aliased is not None:
            is_package = self._is_package(aliased)
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, aliased), is_package=is_package)
        if fullname == "lightning":
            real = self._real_lightning
            spec = importlib.machinery.ModuleSpec("lightning", _LightningPackageLoader(real), is_package=True)
            spec.submodule_search_locations = list(real.submodule_search_locations or []) if real is not None else []
            return spec
        if self._real_lightning is None and self._has_lightning_fabric and (
                fullname == "lightning.fabric" or fullname.startswith("lightning.fabric.")):
            aliased = "lightning_fabric" + fullname[len("lightning.fabric"):]
            return importlib.machinery.ModuleSpec(fullname, _AliasLoader(fullname, aliased),
                                                  is_package=self._is_package(aliased))
        return None

    @staticmethod
    def _is_package(name: str) -> bool:
        module = sys.modules.get(name)
        if module is not None:
            return hasattr(module, "__path__")
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError):
            return False
        return spec is not None and spec.submodule_search_locations is not None


def _conflicting_modules() -> List[str]:
    """Real Lightning modules already imported, which the hook can no longer replace."""
    found = []
    for name, module in list(sys.modules.items()):
        if module is None:
            continue
        if name == "lightning":
            loader = getattr(getattr(module, "__spec__", None), "loader", None)
            if not isinstance(loader, _LightningPackageLoader):
                found.append(name)
        elif _target(name) is not None and not getattr(module, "__name__", "").startswith("fastlight"):
            found.append(name)
    return sorted(found)


def installed() -> bool:
    """Whether the hook is in sys.meta_path."""
    return any(isinstance(f, LightningAliasFinder) for f in sys.meta_path)


def alias() -> None:
    """Install the import hook (idempotent): `pytorch_lightning`, `lightning.pytorch` and `lightning`'s PyTorch names
    resolve to fastlight from now on. Call it before anything imports Lightning, e.g. in a notebook's first cell:

        import fastlight; fastlight.alias()
        import lightning as L          # L.Trainer is fastlight.Trainer
    """
    if installed():
        return
    conflicts = _conflicting_modules()
    if conflicts:
        shown = ", ".join(conflicts[:5]) + (" ..." if len(conflicts) > 5 else "")
        raise RuntimeError(
            f"fastlight.alias() must run before Lightning is imported, but {shown} is already loaded (restart the"
            " interpreter / notebook kernel and call fastlight.alias() first)"
        )
    sys.meta_path.insert(0, LightningAliasFinder())


def unalias() -> None:
    """Remove the hook and every module it registered under a Lightning name from sys.modules (objects the program
    already holds stay fastlight's)."""
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, LightningAliasFinder)]
    for name in list(sys.modules):
        if _target(name) is not None or name == "lightning" or name.startswith("lightning."):
            del sys.modules[name]
