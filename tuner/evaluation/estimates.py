"""A config's throughput estimate with its 95% interval, from the agreeing passes of one or more measurements."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from tuner.records import Record
from tuner.util.numbers import is_number

# Student's t, two-sided 95%, by degrees of freedom (a pass count is small: 3 per measurement, a few measurements).
T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
       12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def _t95(freedom: int) -> float:
    known = [df for df in T95 if df <= freedom]
    return T95[max(known)] if freedom <= 30 else 1.96  # the next smaller tabled df: a slightly wider interval


@dataclass(frozen=True)
class Estimate:
    """Mean tokens/s over passes, and its 95% confidence interval (Student's t over the pass throughputs)."""

    mean: float
    low: float
    high: float
    passes: int

    def separates_from(self, other: Estimate) -> bool:
        """Whether this interval lies wholly above ``other``'s."""
        return self.low > other.high


def pass_throughputs(record: Record) -> list[float]:
    """Tokens/s of each pass in the record's agreeing window (every figure of the record comes from them).

    A pass times the same calls each time, so its tokens are the window's tokens/s times its mean pass time.
    """
    info, throughput = record.info or {}, (record.metrics or {}).get("tokens_per_s")
    times, window = info.get("pass_times_s"), info.get("window")
    if not is_number(throughput) or not isinstance(times, list) or not isinstance(window, list) or not window:
        return []
    try:
        chosen = [float(times[index]) for index in window]
    except (IndexError, TypeError, ValueError):
        return []
    if not all(math.isfinite(value) and value > 0 for value in chosen):
        return []
    tokens_per_pass = throughput * sum(chosen) / len(chosen)
    return [tokens_per_pass / seconds for seconds in chosen]


def estimate(records: Sequence[Record]) -> Estimate | None:
    """The pooled estimate over the agreeing passes of ``records`` (measurements of one config); None with < 2."""
    values = [value for record in records for value in pass_throughputs(record)]
    if len(values) < 2:
        return None
    mean = sum(values) / len(values)
    spread = math.sqrt(sum((value - mean) ** 2 for value in values) / (len(values) - 1))
    half = _t95(len(values) - 1) * spread / math.sqrt(len(values))
    return Estimate(mean, mean - half, mean + half, len(values))
