"""Read a user's text file as UTF-8, with a one-line error naming the file and the line of a bad byte."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from tuner.util.errors import ConfigError


def read_text(path: Path) -> str:
    """The file's text; ConfigError naming the line and byte when it is not UTF-8 (a Latin-1 editor, a binary)."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise ConfigError(f"not UTF-8 text: byte 0x{data[error.start]:02x} cannot be decoded", source=str(path),
                          field=f"line {line}") from None


def read_json_object(path: Path) -> dict[str, Any] | None:
    """A JSON object the tool wrote (summary.json, run.json), or None when it is missing, damaged or not an object."""
    try:
        loaded = json.loads(path.read_bytes())
    except (OSError, ValueError):  # ValueError: bad JSON, and bytes that are not UTF-8
        return None
    return loaded if isinstance(loaded, dict) else None
