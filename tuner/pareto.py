"""Pareto fronts over measured records (pure Python)."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.records import Record

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


def pareto_front(records: Sequence[Record], metrics: Sequence[tuple[str, int]] = FRONT_METRICS) -> list[Record]:
    """Measured, non-cached-duplicate records that no other record beats on every metric (by throughput)."""
    unique: dict[str, Record] = {}
    for record in records:
        if record.status in ("ok", "unstable") and all(record.metrics.get(name) is not None for name, _ in metrics):
            unique.setdefault(repr(sorted(record.config.items())), record)
    candidates = list(unique.values())
    front = [record for record in candidates
             if not any(_dominates(other, record, metrics) for other in candidates if other is not record)]
    return sorted(front, key=lambda record: -record.metrics["tokens_per_s"])
