"""One tunable knob: its type, its finite set of choices, its default."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

KNOB_TYPES = ("int", "categorical", "bool")


@dataclass(frozen=True)
class Knob:
    """A knob with a finite, ordered list of choices (ordered so an action index maps to a value)."""

    name: str
    type: str
    choices: tuple[Any, ...]
    default: Any
    doc: str = ""
    costly: tuple[Any, ...] = ()  # values whose every measurement pays a fixed setup first (compiling, starting ranks)

    def is_costly(self, value: Any) -> bool:
        """Whether measuring ``value`` pays this knob's fixed setup (the default never does)."""
        return any(choice == value and type(choice) is type(value) for choice in self.costly)

    def index(self, value: Any) -> int:
        """Position of ``value`` in the choices; ValueError when it is not one of them."""
        for position, choice in enumerate(self.choices):
            if choice == value and type(choice) is type(value):
                return position
        raise ValueError(value)

    def coerce(self, value: Any) -> Any:
        """Turn a value (possibly a string from the command line) into a choice; ValueError if it is none."""
        if isinstance(value, str):
            value = self._parse_text(value)
        self.index(value)
        return value

    def _parse_text(self, text: str) -> Any:
        text = text.strip()
        if self.type == "bool":
            lowered = text.lower()
            if lowered in ("true", "1", "yes", "on"):
                return True
            if lowered in ("false", "0", "no", "off"):
                return False
            raise ValueError(text)
        if self.type == "int":
            try:
                return int(text)
            except ValueError:
                raise ValueError(text) from None
        return text
