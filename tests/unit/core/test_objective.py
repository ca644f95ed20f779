"""The objective: log throughput minus penalties; failures below every feasible score."""

from __future__ import annotations

import math

import pytest

from tuner.objective import FAILED_SCORE, objective_from_dict, score, violation_size
from tuner.util.errors import ConfigError

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


def test_a_metric_that_can_be_zero_can_be_minimized():
    spec = objective_from_dict({"minimize": "kl"}, "t.yaml")
    exact, exact_feasible = score(spec, "ok", {"kl": 0.0})  # the float32 reference scores KL 0 against itself
    close, _ = score(spec, "ok", {"kl": 1e-7})
    far, _ = score(spec, "ok", {"kl": 0.002})
    assert exact_feasible and exact > close > far > FAILED_SCORE


@pytest.mark.parametrize("value", [None, float("nan"), float("inf"), -1.0, True])
def test_a_missing_or_non_finite_figure_is_never_a_score(value):
    assert score(SPEC, "ok", {"tokens_per_s": value, "latency_p95_s": 1.0, "top1_agree": 0.95}) == (FAILED_SCORE,
                                                                                                   False)


def test_a_relative_bound_is_read_against_the_reference():
    spec = objective_from_dict({"constraints": {"task_accuracy": {"min_ratio": 0.99}}}, "t.yaml")
    reference = {"task_accuracy": 0.5}
    assert score(spec, "ok", {"tokens_per_s": 5.0, "task_accuracy": 0.5}, reference)[1]
    assert score(spec, "ok", {"tokens_per_s": 5.0, "task_accuracy": 0.496}, reference)[1]  # 99.2% of it
    assert not score(spec, "ok", {"tokens_per_s": 5.0, "task_accuracy": 0.48}, reference)[1]  # 96%
    assert not score(spec, "ok", {"tokens_per_s": 5.0, "task_accuracy": 0.5}, None)[1]  # no reference: n/a


def test_the_constraint_value_grows_with_the_violation():
    near = violation_size(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 2.2, "top1_agree": 0.95})
    far = violation_size(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 6.0, "top1_agree": 0.95})
    both = violation_size(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 6.0, "top1_agree": 0.5})
    failed = violation_size(SPEC, "oom", {})
    assert violation_size(SPEC, "ok", {"tokens_per_s": 40.0, "latency_p95_s": 1.0, "top1_agree": 0.95}) == 0.0
    assert 0 < near < far < both < failed


@pytest.mark.parametrize(("data", "fragment"), [
    ({"penalty": "lots"}, "objective.penalty: must be a number >= 0 (got 'lots')"),
    ({"constraints": ["x"]}, "objective.constraints: must be a mapping"),
    ({"constraints": {"task_accuracy": {"min_ratio": 0}}}, "objective.constraints.task_accuracy.min_ratio: must be"),
])
def test_bad_objective_values(data, fragment):
    with pytest.raises(ConfigError) as caught:
        objective_from_dict(data, "t.yaml")
    assert fragment in str(caught.value)
