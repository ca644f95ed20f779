"""Wall-clock durations as typed (``90s``, ``10m``, ``1.5h``, ``600``) and as shown (``10m00s``)."""

from __future__ import annotations

import math
import re

UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0}  # a plain number is seconds, as coreutils' timeout reads it
_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)([smh]?)")  # digits only: no sign, no inf, no nan, no exponent


def parse_duration(text: str) -> float | None:
    """Seconds in ``text`` (``90s``, ``10m``, ``1.5h``, ``600``); None unless a positive duration."""
    match = _DURATION.fullmatch(text.strip().lower())
    if match is None:
        return None
    seconds = float(match.group(1)) * UNITS[match.group(2)]
    return seconds if seconds > 0 and math.isfinite(seconds) else None  # 400 digits read as inf


def clock_text(seconds: float) -> str:
    """``10m00s``, ``0m41s``, ``1h30m00s``: whole seconds, minutes always shown."""
    whole = max(0, int(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m{secs:02d}s" if hours else f"{minutes}m{secs:02d}s"
