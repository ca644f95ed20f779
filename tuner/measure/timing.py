"""Pure timing statistics: when repeats agree, percentiles, coefficient of variation."""

from __future__ import annotations

import math
from collections.abc import Sequence

AGREEMENT = 0.10  # the last three repeats must lie within 10% of each other
MIN_REPEATS = 3


def percentile(values: Sequence[float], share: float) -> float:
    """Linear-interpolated percentile (``share`` in [0, 1]) of a non-empty sequence."""
    ordered = sorted(values)
    position = share * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def cv(values: Sequence[float]) -> float:
    """Coefficient of variation (population standard deviation over mean)."""
    mean = sum(values) / len(values)
    if mean == 0:
        return 0.0
    return math.sqrt(sum((value - mean) ** 2 for value in values) / len(values)) / mean


def repeats_agree(pass_times: Sequence[float], tolerance: float = AGREEMENT) -> bool:
    """Whether the last ``MIN_REPEATS`` passes agree within ``tolerance`` (max/min - 1)."""
    if len(pass_times) < MIN_REPEATS:
        return False
    last = pass_times[-MIN_REPEATS:]
    return max(last) / min(last) - 1.0 <= tolerance
