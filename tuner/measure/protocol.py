"""Messages between the parent and the worker: one JSON object per line."""

from __future__ import annotations

import json
from typing import Any


def encode(message: dict[str, Any]) -> bytes:
    """One message as a newline-terminated JSON line."""
    return (json.dumps(message, separators=(",", ":"), default=str) + "\n").encode()


def decode(line: bytes | str) -> dict[str, Any]:
    """Parse one JSON line into a message."""
    return json.loads(line)


def error_payload(kind: str, message: str, *, log_tail: list[str] | None = None,
                  exit_code: int | None = None) -> dict[str, Any]:
    """The structured error every failed measurement carries."""
    return {"type": kind, "message": message, "log_tail": log_tail or [], "exit_code": exit_code}
