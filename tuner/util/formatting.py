"""Figures and configs as text: ``n/a`` for what was not measured, aligned columns, ``knob=value`` pairs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuner.util.numbers import is_number

MISSING = "n/a"  # how a metric that was not measured (null in the record) is shown everywhere


def shown(value: Any, spec: str = "") -> str:
    """``value`` formatted with the format ``spec`` (e.g. ``.1f``), or ``n/a`` when it was not measured."""
    return format(value, spec) if is_number(value) else MISSING


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """Left-aligned columns separated by two spaces."""
    cells = [list(map(str, headers))] + [[str(cell) for cell in row] for row in rows]
    widths = [max(len(row[column]) for row in cells) for column in range(len(headers))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    return "\n".join([lines[0], "  ".join("-" * width for width in widths), *lines[1:]])


def value_text(value: Any) -> str:
    """A knob value as typed on a command line: booleans lower-case (``true``), the rest as ``str`` gives them."""
    return str(value).lower() if isinstance(value, bool) else str(value)


def config_text(config: Mapping[str, Any]) -> str:
    """``knob=value`` pairs on one line."""
    return " ".join(f"{name}={value_text(value)}" for name, value in config.items())
