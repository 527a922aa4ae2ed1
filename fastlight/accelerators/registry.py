"""AcceleratorRegistry: accelerator names -> classes (`lightning.pytorch.accelerators.AcceleratorRegistry`)."""
from typing import Any, Callable, List, Optional


class _AcceleratorRegistry(dict):
    """{name: {"accelerator": class, "description": str, "init_params": dict}}; `get(name)` builds an instance."""

    def register(self, name: str, accelerator: Optional[Callable] = None, description: str = "",
                 override: bool = False, **init_params: Any) -> Callable:
        if not override and name in self:
            raise ValueError(f"'{name}' is already present in the registry. HINT: Use `override=True`.")

        def do_register(accelerator: Callable) -> Callable:
            self[name] = {"accelerator": accelerator, "description": description, "init_params": init_params}
            return accelerator

        if accelerator is not None:
            return do_register(accelerator)
        return do_register

    def get(self, name: str, default: Optional[Any] = None) -> Any:  # type: ignore[override]
        if name in self:
            data = self[name]
            return data["accelerator"](**data["init_params"])
        if default is not None:
            return default
        available = ", ".join(sorted(self))
        raise KeyError(f"Invalid accelerator name '{name}'. Available accelerators: {available}")

    def remove(self, name: str) -> None:
        self.pop(name)

    def available_accelerators(self) -> List[str]:
        return list(self.keys())

    def __str__(self) -> str:
        return "Registered Accelerators: {}".format(", ".join(self.keys()))


AcceleratorRegistry = _AcceleratorRegistry()


def _register_builtin(registry: _AcceleratorRegistry, classes: List[type]) -> None:
    for cls in classes:
        cls.register_accelerators(registry)


