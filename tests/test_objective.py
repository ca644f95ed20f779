"""The objective: log throughput minus penalties; failures below every feasible score."""

from __future__ import annotations

import math

import pytest

from tuner.errors import ConfigError
from tuner.objective import FAILED_SCORE, objective_from_dict, score

SPEC = objective_from_dict({"maximize": "tokens_per_s", "baseline": 10.0,
                            "constraints": {"latency_p95_s": {"max": 2.0}, "top1_agree": {"min": 0.9}}}, "t.yaml")


def test_feasible_score_is_log_ratio():
    value, feasible = score(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 1.0, "top1_agree": 0.95})
    assert feasible and value == pytest.approx(math.log(4.0))


def test_violations_are_penalized_by_size():
    slow, feasible = score(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 3.0, "top1_agree": 0.95})
    assert not feasible and slow == pytest.approx(math.log(4.0) - (1 + 10 * 0.5))
    slower, _ = score(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 4.0, "top1_agree": 0.95})
    assert slower < slow


def test_failures_rank_below_everything():
    for status in ("crash", "oom", "timeout", "error", "infeasible"):
        assert score(SPEC, status, {}) == (FAILED_SCORE, False)
    worst_violation, _ = score(SPEC, "ok", {"tokens_per_s": 0.01, "latency_p95_s": 1e6, "top1_agree": 0.0})
    assert worst_violation > FAILED_SCORE


def test_bad_objective_field():
    with pytest.raises(ConfigError, match=r"objective.constraints.top1_agree: give \{min: x\}"):
        objective_from_dict({"constraints": {"top1_agree": {"atleast": 1}}}, "t.yaml")
