"""Run names and task ids are names, not paths: a small safe alphabet, so no write escapes the runs folder."""

from __future__ import annotations

import re
from typing import Any

from tuner.util.errors import ConfigError

MAX_NAME = 100
NAME_RULE = (f"must be a name of 1-{MAX_NAME} letters, digits, '.', '_' or '-', not starting with '.' or '-' "
             "(a name, not a path)")
_NAME = re.compile(rf"[A-Za-z0-9_][A-Za-z0-9._-]{{0,{MAX_NAME - 1}}}")
RESERVED = ("cache", "export", "mlartifacts", "models", "mlflow.db", "optuna.db")  # infertune's own, in runs/


def is_name(value: Any) -> bool:
    """Whether ``value`` is a safe name: a string of the safe alphabet, 1 to MAX_NAME characters."""
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def checked_name(value: Any, field: str, source: str | None = None) -> str:
    """``value`` when it is a safe name, else a one-line ConfigError naming ``source``/``field`` and the value."""
    if not is_name(value):
        raise ConfigError(NAME_RULE, source=source, field=field, value=value)
    return value


def checked_run_name(value: Any, field: str) -> str:
    """``value`` when it is a safe name that infertune does not keep for its own files in the runs folder."""
    name = checked_name(value, field)
    if name in RESERVED:
        raise ConfigError(f"infertune keeps this name in the runs folder for its own files "
                          f"({', '.join(RESERVED)}); choose another", field=field, value=name)
    return name
