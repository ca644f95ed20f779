"""Stopping a measurement early (design §5): an accuracy bound broken before timing, a hopeless config after a pass.

The evaluator sends the rule with each request (the objective's bounds, the best throughput the run has so far);
the backend asks it twice: once its accuracy figures are in, and after each timed pass. A config stopped here is
``pruned``: its record keeps the partial figures, and it is never cached as complete or ranked best.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tuner.measure.timing import AGREEMENT
from tuner.objective import Bound, ObjectiveSpec
from tuner.util.numbers import is_number, percentile

ACCURACY_METRICS = ("top1_agree", "kl", "task_accuracy")  # scored before any timing
PRUNE_BELOW = 0.5  # a config that cannot reach half the best throughput so far is stopped after its first pass
PRUNED = "pruned"  # the info key a pruned measurement's reason goes under


@dataclass(frozen=True)
class StopRule:
    """When to stop a measurement early: the objective's bounds, and a throughput floor relative to the incumbent.

    ``incumbent``: the best ``tokens_per_s`` of a rankable record so far (None: nothing to compare with);
    ``fraction``: a config whose optimistic throughput stays below ``fraction * incumbent`` is stopped (0: never).
    """

    bounds: tuple[Bound, ...]
    maximize_throughput: bool
    incumbent: float | None = None
    fraction: float = PRUNE_BELOW

    @classmethod
    def for_objective(cls, objective: ObjectiveSpec, incumbent: float | None,
                      fraction: float = PRUNE_BELOW) -> StopRule:
        """The rule for a task's objective, given the run's best throughput so far."""
        maximize = objective.metric == "tokens_per_s" and objective.direction == "maximize"
        return cls(objective.bounds, maximize, incumbent if maximize else None, fraction)

    def to_payload(self) -> dict[str, Any]:
        """JSON-able form, sent to the worker with a request."""
        return {"bounds": [asdict(bound) for bound in self.bounds], "maximize_throughput": self.maximize_throughput,
                "incumbent": self.incumbent, "fraction": self.fraction}

    @classmethod
    def from_payload(cls, data: Mapping[str, Any] | None) -> StopRule | None:
        """The rule a request carries, or None (never stop early)."""
        if not data:
            return None
        return cls(tuple(Bound(**bound) for bound in data.get("bounds", ())), bool(data.get("maximize_throughput")),
                   data.get("incumbent"), float(data.get("fraction", PRUNE_BELOW)))

    def accuracy_miss(self, metrics: Mapping[str, Any], reference: Mapping[str, Any] | None) -> str | None:
        """Why the accuracy figures already break a bound ('top1_agree 0.273 < min 0.9'), or None."""
        for bound in self.bounds:
            value = metrics.get(bound.metric)
            if bound.metric in ACCURACY_METRICS and is_number(value) and bound.violation(value, reference) > 0:
                return _miss_text(bound, value, reference)
        return None

    def timing_miss(self, passes: Sequence[Sequence[tuple[float, float]]], tokens_per_call: int,
                    reference: Mapping[str, Any] | None) -> str | None:
        """Why the passes so far show the config cannot end inside a latency bound or near the incumbent, or None.

        ``passes``: per pass, the (end-to-end s, first-token s) of each generate call. The test is optimistic:
        the fastest pass, made faster by the agreement tolerance, must still miss; noise only makes a pass slower.
        """
        if not passes:
            return None
        # passes loop the workload different numbers of times: the fastest is the one with the fastest calls
        fastest = min(passes, key=lambda calls: sum(e2e for e2e, _ in calls) / len(calls))
        e2e = [total / (1.0 + AGREEMENT) for total, _ in fastest]
        optimistic = {"latency_p50_s": percentile(e2e, 0.50), "latency_p95_s": percentile(e2e, 0.95),
                      "ttft_s": sum(first for _, first in fastest) / len(fastest) / (1.0 + AGREEMENT)}
        for bound in self.bounds:
            value = optimistic.get(bound.metric)
            limits = bound.limits(reference)
            if value is not None and limits is not None and limits[1] is not None and value > limits[1]:
                return f"{bound.metric} at least {value:.3g} s > max {limits[1]:.3g} s after {_passes(passes)}"
        if self.maximize_throughput and is_number(self.incumbent) and self.fraction > 0:
            ceiling = len(fastest) * tokens_per_call / sum(e2e)
            if ceiling < self.fraction * self.incumbent:
                return (f"tokens_per_s at most {ceiling:.4g} after {_passes(passes)}, under {self.fraction:g} x "
                        f"the best so far ({self.incumbent:.4g})")
        return None


def _passes(passes: Sequence[object]) -> str:
    """'2 passes' (the calibration pass is the first)."""
    return f"{len(passes)} pass{'es' if len(passes) > 1 else ''}"


def _miss_text(bound: Bound, value: float, reference: Mapping[str, Any] | None) -> str:
    """'top1_agree 0.273 < min 0.9' for a broken bound."""
    limits = bound.limits(reference)
    if limits is None:
        return f"{bound.metric} {value:.3g}, and the reference's {bound.metric} it is bounded relative to is missing"
    minimum, maximum = limits
    if minimum is not None and value < minimum:
        return f"{bound.metric} {value:.3g} < min {minimum:.3g}"
    return f"{bound.metric} {value:.3g} > max {maximum:.3g}"
