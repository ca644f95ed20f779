"""The objective: one scalar score per record, the same for every agent (design §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuner.util.errors import ConfigError
from tuner.util.numbers import is_number

METRICS = ("ttft_s", "tpot_s", "latency_p50_s", "latency_p95_s", "tokens_per_s", "peak_mem_mb", "warmup_s",
           "top1_agree", "kl", "task_accuracy", "repeats", "cv")  # every static-batch record's (design §5)
SERVING_METRICS = ("ttft_p50_s", "ttft_p95_s", "ttft_p99_s", "itl_p50_s", "itl_p95_s", "e2e_p95_s", "requests_per_s",
                   "output_tokens_per_s", "goodput_rps", "token_agree", "server_start_s", "warmup_s", "repeats",
                   "cv")  # every serving record's (design §15)
KNOWN_METRICS = tuple(dict.fromkeys(METRICS + SERVING_METRICS))  # what an objective may name
BOUND_KEYS = {"min", "max", "min_ratio", "max_ratio"}
FAILED_SCORE = -20.0  # below any feasible score: log(tokens_per_s / baseline) > -20 for any real throughput
ZERO_FLOOR = 1e-8  # a metric at 0 (kl of the reference itself, cv of a perfectly steady config) scores as 1e-8
# Statuses whose figures are scored: measured ones, and a pruned one's partial figures (records.Status.scored;
# records and objective are siblings that do not import each other).
SCORED_STATUSES = ("ok", "unstable", "pruned")
FAILED_VIOLATION = 1000.0  # Optuna's constraint value for a config that measured nothing: above any measured miss


@dataclass(frozen=True)
class Bound:
    """A constraint on one metric: ``min <= value <= max``, absolute or as a ratio of the reference's value.

    ``min_ratio: 0.99`` is the MLPerf convention: at least 99% of what the reference config scores.
    """

    metric: str
    minimum: float | None = None
    maximum: float | None = None
    min_ratio: float | None = None
    max_ratio: float | None = None

    def limits(self, reference: Mapping[str, Any] | None) -> tuple[float | None, float | None] | None:
        """(min, max) in the metric's units; None when a ratio needs a reference value that is missing."""
        minimum, maximum = self.minimum, self.maximum
        if self.min_ratio is not None or self.max_ratio is not None:
            base = (reference or {}).get(self.metric)
            if not is_number(base):
                return None
            if self.min_ratio is not None:
                minimum = max(minimum if minimum is not None else -math.inf, self.min_ratio * base)
            if self.max_ratio is not None:
                maximum = min(maximum if maximum is not None else math.inf, self.max_ratio * base)
        return minimum, maximum

    def violation(self, value: float | None, reference: Mapping[str, Any] | None = None) -> float:
        """Relative size of the violation (0 when satisfied; 1 when the metric or its reference is missing)."""
        limits = self.limits(reference)
        if not is_number(value) or limits is None:
            return 1.0
        minimum, maximum = limits
        if maximum is not None and value > maximum:
            return (value - maximum) / max(abs(maximum), 1e-12)
        if minimum is not None and value < minimum:
            return (minimum - value) / max(abs(minimum), 1e-12)
        return 0.0


@dataclass(frozen=True)
class ObjectiveSpec:
    """Maximize (or minimize) a metric subject to bounds; violations cost ``penalty * (1 + 10 * relative size)``."""

    metric: str = "tokens_per_s"
    direction: str = "maximize"
    baseline: float = 1.0
    bounds: tuple[Bound, ...] = ()
    penalty: float = 1.0


def objective_from_dict(data: Mapping[str, Any], source: str) -> ObjectiveSpec:
    """Parse the ``objective:`` block of a task."""
    allowed = {"maximize", "minimize", "baseline", "constraints", "penalty"}
    for key in data:
        if key not in allowed:
            raise ConfigError(f"unknown key; known: {', '.join(sorted(allowed))}", source=source,
                              field=f"objective.{key}")
    if "maximize" in data and "minimize" in data:
        raise ConfigError("give maximize or minimize, not both", source=source, field="objective")
    direction = "minimize" if "minimize" in data else "maximize"
    metric = data.get(direction, "tokens_per_s")
    if metric not in KNOWN_METRICS:
        raise ConfigError(f"unknown metric; known: {', '.join(KNOWN_METRICS)}", source=source,
                          field=f"objective.{direction}", value=metric)
    bounds = []
    constraints = data.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise ConfigError("must be a mapping of metric: {min/max/min_ratio/max_ratio: x}", source=source,
                          field="objective.constraints", value=constraints)
    for name, limits in constraints.items():
        field = f"objective.constraints.{name}"
        if name not in KNOWN_METRICS:
            raise ConfigError("unknown metric", source=source, field=field, value=name)
        if not isinstance(limits, dict) or not set(limits) <= BOUND_KEYS or not limits:
            raise ConfigError("give {min: x}, {max: y}, {min_ratio: r} and/or {max_ratio: r}", source=source,
                              field=field, value=limits)
        for key, value in limits.items():
            if not is_number(value) or (key.endswith("_ratio") and value <= 0):
                kind = "a positive number (a share of the reference's value)" if key.endswith("_ratio") else "a number"
                raise ConfigError(f"must be {kind}", source=source, field=f"{field}.{key}", value=value)
        bounds.append(Bound(name, limits.get("min"), limits.get("max"), limits.get("min_ratio"),
                            limits.get("max_ratio")))
    baseline = data.get("baseline", 1.0)
    if isinstance(baseline, bool) or not isinstance(baseline, int | float) or baseline <= 0:
        raise ConfigError("must be a positive number", source=source, field="objective.baseline", value=baseline)
    penalty = data.get("penalty", 1.0)
    if not is_number(penalty) or penalty < 0:
        raise ConfigError("must be a number >= 0", source=source, field="objective.penalty", value=penalty)
    return ObjectiveSpec(metric, direction, float(baseline), tuple(bounds), float(penalty))


def constraint_violations(spec: ObjectiveSpec, metrics: Mapping[str, Any],
                          reference: Mapping[str, Any] | None = None) -> dict[str, float]:
    """Relative violation per bound (0 = satisfied); ``reference`` holds the reference config's metrics."""
    return {bound.metric: bound.violation(metrics.get(bound.metric), reference) for bound in spec.bounds}


def score(spec: ObjectiveSpec, status: str, metrics: Mapping[str, Any] | None,
          reference: Mapping[str, Any] | None = None) -> tuple[float, bool]:
    """(scalar score, feasible) of a record; failed or infeasible configs, or a missing figure, get ``FAILED_SCORE``.

    The score is ±log(value / baseline); a metric that can reach 0 (``minimize: kl``) is floored at
    ``ZERO_FLOOR`` times the baseline, so 0 is the best value rather than an error.
    """
    value = (metrics or {}).get(spec.metric)
    if status not in SCORED_STATUSES or not is_number(value) or value < 0:
        return FAILED_SCORE, False
    ratio = max(value / spec.baseline, ZERO_FLOOR)
    raw = math.log(ratio) if spec.direction == "maximize" else -math.log(ratio)
    violations = [size for size in constraint_violations(spec, metrics or {}, reference).values() if size > 0]
    penalty = sum(spec.penalty * (1.0 + 10.0 * size) for size in violations)
    return max(raw - penalty, FAILED_SCORE + 1.0), not violations


def score_row(spec: ObjectiveSpec, row: Mapping[str, Any]) -> tuple[float, bool]:
    """``score`` of one recorded line (a records.jsonl object, or a worker's reply), against the reference figures
    its ``info`` carries."""
    return score(spec, row["status"], row.get("metrics"), (row.get("info") or {}).get("reference_metrics"))


def violation_size(spec: ObjectiveSpec, status: str, metrics: Mapping[str, Any] | None,
                   reference: Mapping[str, Any] | None = None) -> float:
    """How far a record is from feasible: 0 when feasible, the sum of its relative misses when measured,
    ``FAILED_VIOLATION`` when nothing was measured (so a sampler can learn "how far", not only "whether").

    A config pruned before timing has its accuracy figures only: its miss is theirs, plus 1 per figure not reached.
    """
    value = (metrics or {}).get(spec.metric)
    pruned_early = status == "pruned" and any(is_number((metrics or {}).get(bound.metric)) for bound in spec.bounds)
    if not pruned_early and (status not in SCORED_STATUSES or not is_number(value) or value < 0):
        return FAILED_VIOLATION
    total = sum(constraint_violations(spec, metrics or {}, reference).values())
    return min(total, FAILED_VIOLATION - 1.0)
