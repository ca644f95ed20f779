"""Pure timing statistics: when repeats agree, percentiles, coefficient of variation."""

from __future__ import annotations

import math
from collections.abc import Sequence

from tuner.util.numbers import percentile

AGREEMENT = 0.10  # the last three repeats must lie within 10% of each other
MIN_REPEATS = 3


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


def agreeing_window(pass_count: int) -> list[int]:
    """Indices of the passes every reported figure comes from: the last ``MIN_REPEATS`` (all, if fewer)."""
    return list(range(max(0, pass_count - MIN_REPEATS), pass_count))


def window_figures(pass_calls: Sequence[Sequence[tuple[float, float]]], tokens_per_call: int, new_tokens: int,
                   pass_times: Sequence[float] | None = None) -> dict[str, float]:
    """design §5 timing figures from the agreeing window only.

    ``pass_calls``: per pass, the (end-to-end s, first-token s) of each generate call; ``pass_times``: the
    pass durations the agreement was judged on (default: each pass's summed calls; the slowest rank's for a
    sharded model). Earlier passes, which did not agree, change nothing here.
    """
    times = list(pass_times) if pass_times is not None else [sum(e2e for e2e, _ in calls) for calls in pass_calls]
    window = agreeing_window(len(pass_calls))
    calls = [call for index in window for call in pass_calls[index]]
    e2e = [total for total, _ in calls]
    ttft = [first for _, first in calls]
    return {
        "ttft_s": sum(ttft) / len(ttft),
        "tpot_s": sum((total - first) / (new_tokens - 1) for total, first in calls) / len(calls),
        "latency_p50_s": percentile(e2e, 0.50),
        "latency_p95_s": percentile(e2e, 0.95),
        "tokens_per_s": len(calls) * tokens_per_call / sum(e2e),
        "cv": cv([times[index] for index in window]),
    }
