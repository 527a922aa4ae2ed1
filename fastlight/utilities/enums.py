"""Enums with Lightning's names (`lightning.pytorch.utilities.enums`)."""
from enum import Enum
from typing import Any, Optional


class LightningEnum(str, Enum):
    """A str-valued enum that compares equal to its value, case-insensitively ("norm" == GradClipAlgorithmType.NORM)."""

    @classmethod
    def from_str(cls, value: str, source: str = "key") -> Optional["LightningEnum"]:
        """The member whose name ("key"), value ("value") or either ("any") matches `value`, ignoring case."""
        for member in cls:
            if source in ("key", "any") and member.name.lower() == value.lower():
                return member
            if source in ("value", "any") and member.value.lower() == value.lower():
                return member
        return None

    def __eq__(self, other: object) -> bool:
        other = other.value if isinstance(other, Enum) else str(other)
        return self.value.lower() == other.lower()

    def __hash__(self) -> int:
        return hash(self.value.lower())

    def __str__(self) -> str:
        return self.value

    @classmethod
    def _missing_(cls, value: Any) -> Optional["LightningEnum"]:
        return cls.from_str(str(value), source="value") if isinstance(value, str) else None


class GradClipAlgorithmType(LightningEnum):
    """`Trainer(gradient_clip_algorithm=...)`: clip by the total 2-norm or by value."""

    VALUE = "value"
    NORM = "norm"

    @staticmethod
    def supported_type(val: str) -> bool:
        return any(m.value == val for m in GradClipAlgorithmType)

    @staticmethod
    def supported_types() -> list:
        return [m.value for m in GradClipAlgorithmType]


__all__ = ["GradClipAlgorithmType", "LightningEnum"]
