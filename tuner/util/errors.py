"""User-facing errors: one line naming the file, the field and the value; the CLI exits 2 on them."""

from __future__ import annotations

from typing import Any


class UserError(Exception):
    """A mistake in the user's input, reported as one line without a traceback."""

    exit_code = 2

    def __init__(self, message: str, *, source: str | None = None, field: str | None = None, value: Any = None):
        self.source = source
        self.field = field
        self.value = value
        self.detail = message
        super().__init__(self._line())

    def _line(self) -> str:
        where = ": ".join(part for part in (self.source, self.field) if part)
        shown = "" if self.value is None else f" (got {self.value!r})"
        return f"{where}: {self.detail}{shown}" if where else f"{self.detail}{shown}"


class ConfigError(UserError):
    """A search space, task spec or --set value that does not validate."""


class ModelNotFoundError(UserError):
    """The model named by a task cannot be found on this machine."""


class EveryConfigFails(RuntimeError):
    """The first configs all failed: stop instead of burning the budget; the message quotes the first error."""
