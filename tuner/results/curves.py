"""Best-so-far curves summarized over seeds without hiding the seeds that have no feasible config yet."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class SeedBand:
    """Per measurement count: mean, min and max over every seed, and the share of seeds with a feasible config.

    A seed with no feasible config yet counts as ``none_value`` in the mean, min and max: leaving it out would make
    the mean fall when a seed finds its first, worse-than-average config.
    """

    mean: list[float]
    low: list[float]
    high: list[float]
    feasible_share: list[float]
    none_value: float


def has_value(value: float) -> bool:
    """A curve point that holds a feasible value (nan: none yet)."""
    return not math.isnan(value)


def none_value(curves: Sequence[Sequence[float]], maximize: bool) -> float:
    """What "no feasible config yet" counts as: 0 when maximizing (nothing deployable delivers nothing); when
    minimizing, the worst feasible value any seed found (nan when no seed found any)."""
    if maximize:
        return 0.0
    found = [value for curve in curves for value in curve if has_value(value)]
    return max(found) if found else math.nan


def seed_band(curves: Sequence[Sequence[float]], none: float) -> SeedBand:
    """The summary of equally long best-so-far ``curves`` (one per seed), "none yet" counted as ``none``."""
    steps = len(curves[0]) if curves else 0
    mean, low, high, share = [], [], [], []
    for step in range(steps):
        column = [curve[step] for curve in curves]
        filled = [value if has_value(value) else none for value in column]
        mean.append(sum(filled) / len(filled))
        low.append(min(filled))
        high.append(max(filled))
        share.append(sum(has_value(value) for value in column) / len(column))
    return SeedBand(mean, low, high, share, none)
