"""String enums with Lightning's semantics: members are `str`, compare equal to their value in any letter case, and
hash like it (so "fit" and TrainerFn.FITTING are the same dict key)."""
import warnings
from enum import Enum
from typing import List, Optional


class LightningEnum(str, Enum):
    @classmethod
    def from_str(cls, value: str, source: str = "key") -> "LightningEnum":
        """The member whose name ("key"), value ("value") or either ("any", names first) matches `value`."""
        if source in ("key", "any"):
            for name in cls.__members__:
                if name.lower() == value.lower():
                    return cls[name]
        if source in ("value", "any"):
            for name, member in cls.__members__.items():
                if member == value:
                    return cls[name]
        raise ValueError(f"Invalid match: expected one of {cls._allowed_matches(source)}, but got {value}.")

    @classmethod
    def try_from_str(cls, value: str, source: str = "key") -> Optional["LightningEnum"]:
        try:
            return cls.from_str(value, source)
        except ValueError:
            warnings.warn(UserWarning(f"Invalid string: expected one of {cls._allowed_matches(source)}, but got"
                                      f" {value}."))
        return None

    @classmethod
    def _allowed_matches(cls, source: str) -> List[str]:
        names = list(cls.__members__)
        values = [m.value for m in cls.__members__.values()]
        return names if source == "key" else values if source == "value" else names + values

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Enum):
            other = other.value
        return self.value.lower() == str(other).lower()

    def __ne__(self, other: object) -> bool:
        return not self.__eq__(other)

    def __hash__(self) -> int:
        return hash(self.value.lower())


class GradClipAlgorithmType(LightningEnum):
    VALUE = "value"
    NORM = "norm"

    @staticmethod
    def supported_type(val: str) -> bool:
        return any(x.value == val for x in GradClipAlgorithmType)

    @staticmethod
    def supported_types() -> List[str]:
        return [x.value for x in GradClipAlgorithmType]
