"""Pareto fronts over measured records: a metric missing somewhere is left out, a NaN or infinity never on a front."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.records import Record, non_finite
from tuner.util.numbers import is_number

# (metric, +1 to maximize / -1 to minimize): the trade-offs a deployer weighs
FRONT_METRICS: tuple[tuple[str, int], ...] = (("tokens_per_s", 1), ("latency_p95_s", -1), ("top1_agree", 1),
                                              ("peak_mem_mb", -1))


def _dominates(a: Record, b: Record, metrics: Sequence[tuple[str, int]]) -> bool:
    better_somewhere = False
    for name, sign in metrics:
        left, right = sign * a.metrics[name], sign * b.metrics[name]
        if left < right:
            return False
        better_somewhere |= left > right
    return better_somewhere


def _measured(records: Sequence[Record], first: str) -> list[Record]:
    """Measured records with the leading metric known, one per config (the first measurement of it).

    A record holding a NaN or an infinity is no measurement: it is left out (a null only leaves its metric out).
    """
    unique: dict[str, Record] = {}
    for record in records:
        if (record.status in ("ok", "unstable") and is_number(record.metrics.get(first))
                and non_finite(record.metrics) is None):
            unique.setdefault(repr(sorted(record.config.items())), record)
    return list(unique.values())


def front_metrics(records: Sequence[Record],
                  metrics: Sequence[tuple[str, int]] = FRONT_METRICS) -> list[tuple[str, int]]:
    """The metrics a front can weigh: the first (always), and every other one known for every candidate.

    A metric that a candidate lacks (null: a foreign recording, a backend that cannot read it) cannot rank that
    candidate against the others, so it is left out for all of them rather than guessed.
    """
    candidates = _measured(records, metrics[0][0])
    return [metrics[0], *(item for item in metrics[1:]
                          if candidates and all(is_number(record.metrics.get(item[0])) for record in candidates))]


def pareto_front(records: Sequence[Record], metrics: Sequence[tuple[str, int]] = FRONT_METRICS) -> list[Record]:
    """Measured, non-cached-duplicate records that no other record beats on every metric of ``front_metrics``.

    Sorted by the first metric, best first; records lacking the first metric are not on the front.
    """
    used = front_metrics(records, metrics)
    candidates = _measured(records, metrics[0][0])
    front = [record for record in candidates
             if not any(_dominates(other, record, used) for other in candidates if other is not record)]
    name, sign = metrics[0]
    return sorted(front, key=lambda record: -sign * record.metrics[name])
