"""Environment probes with Lightning's names (`lightning.pytorch.utilities.imports`): whether an optional package
is installed, at which version, and which torch/Python is running. Each `_X_AVAILABLE` is truthy when the
requirement holds; `str()` of a failed one says what is missing."""
import functools
import importlib.util
import platform
import sys
from typing import Optional

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version


class RequirementCache:
    """A requirement string ("rich>=10.2.2", or a bare module name) checked against the installed distributions the
    first time it is asked (bool), like lightning_utilities' class of the same name."""

    def __init__(self, requirement: str, module: Optional[str] = None) -> None:
        self.requirement = requirement
        self.module = module
        self._ok: Optional[bool] = None
        self._message = ""

    def _check(self) -> None:
        if self._ok is not None:
            return
        try:
            req = Requirement(self.requirement)
        except InvalidRequirement:
            req = None
        name = req.name if req is not None else self.requirement
        version = _installed_version(name)
        if version is None:
            module = self.module or name.replace("-", "_")
            if importlib.util.find_spec(module.split(".")[0]) is None:
                self._ok, self._message = False, f"Requirement {self.requirement!r} not met: {name} is not installed."
                return
            self._ok = req is None or not req.specifier  # importable, version unknown: only a bare name holds
            self._message = f"Requirement {self.requirement!r} met" if self._ok else (
                f"Requirement {self.requirement!r} not met: the version of {name} is unknown.")
            return
        ok = req is None or req.specifier.contains(version, prereleases=True)
        self._ok = ok
        self._message = (f"Requirement {self.requirement!r} met" if ok else
                         f"Requirement {self.requirement!r} not met: found {name}=={version}.")

    def __bool__(self) -> bool:
        self._check()
        return bool(self._ok)

    def __str__(self) -> str:
        self._check()
        return self._message

    def __repr__(self) -> str:
        return self.__str__()


def _installed_version(name: str) -> Optional[str]:
    try:
        from importlib.metadata import PackageNotFoundError, version

        return version(name)
    except (PackageNotFoundError, ValueError):
        return None


def compare_version(package: str, op, version: str, use_base_version: bool = False) -> bool:
    """`op(installed version of package, version)`; False when the package is not installed."""
    if package == "torch":  # torch.__version__ is always there (and counts a local build's suffix correctly)
        import torch

        installed = str(torch.__version__)
    else:
        installed = _installed_version(package)
    if installed is None:
        return False
    try:
        have = Version(installed)
    except InvalidVersion:
        return False
    if use_base_version:
        have = Version(have.base_version)
    return op(have, Version(version))


@functools.lru_cache(maxsize=None)
def module_available(module_path: str) -> bool:
    """Whether `import module_path` would find the module (without importing it, except its parent packages)."""
    try:
        return importlib.util.find_spec(module_path) is not None
    except (ImportError, ValueError):
        return False


def _torch_at_least(v: str) -> bool:
    import operator

    return compare_version("torch", operator.ge, v, use_base_version=True)


_IS_WINDOWS = platform.system() == "Windows"
_IS_INTERACTIVE = hasattr(sys, "ps1") or bool(sys.flags.interactive)
_PYTHON_GREATER_EQUAL_3_10_0 = sys.version_info[:2] >= (3, 10)
_PYTHON_GREATER_EQUAL_3_11_0 = sys.version_info[:2] >= (3, 11)

_TORCH_GREATER_EQUAL_2_2 = _torch_at_least("2.2.0")
_TORCH_GREATER_EQUAL_2_3 = _torch_at_least("2.3.0")
_TORCH_GREATER_EQUAL_2_4 = _torch_at_least("2.4.0")
_TORCH_GREATER_EQUAL_2_4_1 = _torch_at_least("2.4.1")
_TORCH_GREATER_EQUAL_2_5 = _torch_at_least("2.5.0")
_TORCH_GREATER_EQUAL_2_6 = _torch_at_least("2.6.0")
_TORCH_GREATER_EQUAL_2_8 = _torch_at_least("2.8.0")
_TORCH_EQUAL_2_8 = RequirementCache("torch>=2.8.0,<2.9.0")
_TORCH_EQUAL_2_9 = RequirementCache("torch>=2.9.0,<2.10.0")

_NUMPY_AVAILABLE = RequirementCache("numpy")
_TORCHVISION_AVAILABLE = RequirementCache("torchvision")
_TORCHMETRICS_GREATER_EQUAL_0_8_0 = RequirementCache("torchmetrics>=0.8.0")
_TORCHMETRICS_GREATER_EQUAL_0_9_1 = RequirementCache("torchmetrics>=0.9.1")
_TORCHMETRICS_GREATER_EQUAL_0_11 = RequirementCache("torchmetrics>=0.11.0")
_TORCHMETRICS_GREATER_EQUAL_1_0_0 = RequirementCache("torchmetrics>=1.0.0")
_OMEGACONF_AVAILABLE = RequirementCache("omegaconf")
_RICH_AVAILABLE = RequirementCache("rich>=10.2.2")
_TENSORBOARD_AVAILABLE = RequirementCache("tensorboard")
_TENSORBOARDX_AVAILABLE = RequirementCache("tensorboardX")
_PSUTIL_AVAILABLE = RequirementCache("psutil")
_DEEPSPEED_AVAILABLE = RequirementCache("deepspeed")
_JSONARGPARSE_AVAILABLE = RequirementCache("jsonargparse[signatures]>=4.39.0")
