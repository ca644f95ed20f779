"""The one test of what counts as a figure: a finite real number."""

from __future__ import annotations

import math
from typing import Any


def is_number(value: Any) -> bool:
    """A finite real number: a measured figure (None, bools, NaN and infinities are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
