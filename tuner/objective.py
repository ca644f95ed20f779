"""The objective: one scalar score per record, the same for every agent (DESIGN §7)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuner.errors import ConfigError

METRICS = ("ttft_s", "tpot_s", "latency_p50_s", "latency_p95_s", "tokens_per_s", "peak_mem_mb", "warmup_s",
           "top1_agree", "kl", "task_accuracy", "repeats", "cv")
FAILED_SCORE = -20.0  # below any feasible score: log(tokens_per_s / baseline) > -20 for any real throughput


@dataclass(frozen=True)
class Bound:
    """A constraint on one metric: ``min <= value <= max``."""

    metric: str
    minimum: float | None = None
    maximum: float | None = None

    def violation(self, value: float | None) -> float:
        """Relative size of the violation (0 when satisfied; 1 when the metric is missing)."""
        if value is None:
            return 1.0
        if self.maximum is not None and value > self.maximum:
            return (value - self.maximum) / max(abs(self.maximum), 1e-12)
        if self.minimum is not None and value < self.minimum:
            return (self.minimum - value) / max(abs(self.minimum), 1e-12)
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
    if metric not in METRICS:
        raise ConfigError(f"unknown metric; known: {', '.join(METRICS)}", source=source,
                          field=f"objective.{direction}", value=metric)
    bounds = []
    for name, limits in (data.get("constraints") or {}).items():
        field = f"objective.constraints.{name}"
        if name not in METRICS:
            raise ConfigError("unknown metric", source=source, field=field, value=name)
        if not isinstance(limits, dict) or not set(limits) <= {"min", "max"} or not limits:
            raise ConfigError("give {min: x} and/or {max: y}", source=source, field=field, value=limits)
        for key, value in limits.items():
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ConfigError("must be a number", source=source, field=f"{field}.{key}", value=value)
        bounds.append(Bound(name, limits.get("min"), limits.get("max")))
    baseline = data.get("baseline", 1.0)
    if isinstance(baseline, bool) or not isinstance(baseline, int | float) or baseline <= 0:
        raise ConfigError("must be a positive number", source=source, field="objective.baseline", value=baseline)
    return ObjectiveSpec(metric, direction, float(baseline), tuple(bounds), float(data.get("penalty", 1.0)))


def constraint_violations(spec: ObjectiveSpec, metrics: Mapping[str, Any]) -> dict[str, float]:
    """Relative violation per bound (0 = satisfied)."""
    return {bound.metric: bound.violation(metrics.get(bound.metric)) for bound in spec.bounds}


def score(spec: ObjectiveSpec, status: str, metrics: Mapping[str, Any] | None) -> tuple[float, bool]:
    """(scalar score, feasible) of a record; failed or infeasible configs get ``FAILED_SCORE``."""
    value = (metrics or {}).get(spec.metric)
    if status not in ("ok", "unstable") or value is None or value <= 0:
        return FAILED_SCORE, False
    ratio = value / spec.baseline
    raw = math.log(ratio) if spec.direction == "maximize" else -math.log(ratio)
    violations = [size for size in constraint_violations(spec, metrics or {}).values() if size > 0]
    penalty = sum(spec.penalty * (1.0 + 10.0 * size) for size in violations)
    return max(raw - penalty, FAILED_SCORE + 1.0), not violations
