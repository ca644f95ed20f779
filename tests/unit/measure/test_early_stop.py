"""Early stop (design §5): an accuracy bound broken before timing, a hopeless config after a pass; `pruned`."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.helpers import measure_ok, tiny_without_compile
from tuner.env.history import keeps_score
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import best_record
from tuner.measure.early_stop import PRUNE_BELOW, StopRule
from tuner.objective import Bound, ObjectiveSpec
from tuner.records import Record
from tuner.results.costs import pruning_saved
from tuner.task import load_task

TOP1 = Bound("top1_agree", minimum=0.9)
LATENCY = Bound("latency_p95_s", maximum=1.0)


def _rule(*bounds: Bound, incumbent: float | None = 1000.0, fraction: float = 0.5) -> StopRule:
    return StopRule.for_objective(ObjectiveSpec(bounds=bounds), incumbent, fraction)


def _pass(seconds_per_call: float, calls: int = 4) -> list[tuple[float, float]]:
    return [(seconds_per_call, seconds_per_call / 10)] * calls


def test_an_accuracy_bound_is_judged_on_the_figures_at_hand():
    rule = _rule(TOP1)
    assert rule.accuracy_miss({"top1_agree": 0.273}, None) == "top1_agree 0.273 < min 0.9"
    assert rule.accuracy_miss({"top1_agree": 0.95}, None) is None
    assert rule.accuracy_miss({"top1_agree": None}, None) is None  # not scored yet: nothing to judge
    relative = _rule(Bound("task_accuracy", min_ratio=0.99))
    assert relative.accuracy_miss({"task_accuracy": 0.7}, {"task_accuracy": 0.8}) == "task_accuracy 0.7 < min 0.792"
    assert relative.accuracy_miss({"task_accuracy": 0.8}, {"task_accuracy": 0.8}) is None
    assert _rule(LATENCY).accuracy_miss({"top1_agree": 0.1}, None) is None  # a latency bound waits for timing


def test_a_pass_far_below_the_incumbent_stops_a_close_one_does_not():
    rule = _rule()  # incumbent 1000 tok/s, fraction 0.5; 100 tokens per call
    stopped = rule.timing_miss([_pass(0.25)], 100, None)  # 400 tok/s: at most 440 with the 10% tolerance
    assert stopped == "tokens_per_s at most 440 after 1 pass, under 0.5 x the best so far (1000)"
    assert rule.timing_miss([_pass(1 / 4.7)], 100, None) is None  # 470 tok/s: inside the tolerance of half
    # the fastest pass decides, per call: a slow pass (noise) beside a fast one does not stop a config
    assert rule.timing_miss([_pass(0.5), _pass(1 / 4.7, calls=12)], 100, None) is None
    assert _rule(incumbent=None).timing_miss([_pass(1.0)], 100, None) is None  # nothing to compare with yet
    assert _rule(fraction=0).timing_miss([_pass(1.0)], 100, None) is None
    latency_first = StopRule.for_objective(ObjectiveSpec(metric="latency_p95_s", direction="minimize"), 1000.0)
    assert latency_first.timing_miss([_pass(1.0)], 100, None) is None  # throughput is not what this task wants


def test_a_latency_bound_already_broken_stops_one_within_the_tolerance_does_not():
    rule = _rule(LATENCY, incumbent=None)
    assert rule.timing_miss([_pass(1.3)], 100, None).startswith("latency_p95_s at least 1.18 s > max 1 s")
    assert rule.timing_miss([_pass(1.05)], 100, None) is None


def test_the_rule_travels_to_the_worker_intact():
    rule = _rule(TOP1, Bound("task_accuracy", min_ratio=0.99), incumbent=123.4, fraction=0.3)
    assert StopRule.from_payload(rule.to_payload()) == rule
    assert StopRule.from_payload(None) is None


def test_a_pruned_record_is_never_best_and_its_savings_are_reported():
    def record(trial: int, status: str, objective: float, duration: float, stage: str | None = None) -> Record:
        return Record(run="r", task="t", space="s", trial=trial, agent="a", config={"batch_size": trial},
                      status=status, error=None, metrics={"tokens_per_s": math.exp(objective)}, objective=objective,
                      feasible=True, cached=False, fingerprint={}, started_at="", duration_s=duration,
                      info={"pruned": {"stage": stage, "reason": "r"}} if stage else {})

    records = [record(0, "ok", 3.0, 60.0), record(1, "pruned", 9.0, 10.0, "accuracy"),
               record(2, "pruned", 1.0, 25.0, "timing"), record(3, "ok", 2.0, 80.0)]
    assert best_record(records).trial == 0
    # the policy's history keeps a slow config's low score, as its training landscapes hold one; not a failure's
    assert keeps_score(records[2]) and not keeps_score(dataclasses.replace(records[2], feasible=False))
    assert keeps_score(dataclasses.replace(records[0], status="unstable"))  # a noisy score still informs
    assert pruning_saved(records) == {"pruned": 2, "at_accuracy": 1, "spent_s": 35.0, "whole_median_s": 70.0,
                                      "saved_s": 60.0 + 45.0}
    assert pruning_saved(records[:1]) is None


@pytest.fixture(scope="module")
def quick_task(tmp_path_factory):
    return load_task(tiny_without_compile(tmp_path_factory.mktemp("quick")))


def test_a_slow_config_is_pruned_after_a_pass_with_partial_figures_and_not_cached(quick_task, tmp_path):
    with Evaluator(quick_task, tmp_path / "run", cache_dir=tmp_path / "cache", prune_below=PRUNE_BELOW) as evaluator:
        fast = measure_ok(evaluator, {"batch_size": 16, "dtype": "float32"})
        assert evaluator.incumbent == fast.metrics["tokens_per_s"]
        slow_config = {"batch_size": 1, "dtype": "float32", "attn_implementation": "eager"}
        slow = evaluator.evaluate(slow_config)
        assert slow.status == "pruned", (slow.metrics, fast.metrics)
        assert slow.info["pruned"]["stage"] == "timing" and "the best so far" in slow.info["pruned"]["reason"]
        assert 0 < slow.metrics["tokens_per_s"] < 0.55 * fast.metrics["tokens_per_s"]
        assert slow.metrics["top1_agree"] == 1.0 and slow.metrics["peak_mem_mb"] is None  # the memory call skipped
        assert slow.objective < fast.objective  # the searchers learn it is slow
        space = evaluator.task.space
        assert evaluator.lookup(space.complete(slow_config)) is None  # never cached as complete
        assert evaluator.lookup(space.complete(fast.config)) is not None


def test_a_config_breaking_an_accuracy_bound_stops_before_timing(quick_task, tmp_path):
    unreachable = dataclasses.replace(quick_task.objective, bounds=(Bound("top1_agree", minimum=1.01),))
    task = dataclasses.replace(quick_task, objective=unreachable)
    config = {"batch_size": 4, "dtype": "float32"}
    with Evaluator(task, tmp_path / "run", use_cache=False, prune_below=PRUNE_BELOW) as evaluator:
        pruned = evaluator.evaluate(config)
        assert pruned.status == "pruned" and pruned.info["pruned"] == {"stage": "accuracy",
                                                                        "reason": "top1_agree 1 < min 1.01"}
        assert pruned.metrics["top1_agree"] == 1.0 and pruned.metrics.get("tokens_per_s") is None
        assert "warmup_s" not in pruned.metrics and not pruned.feasible
    with Evaluator(task, tmp_path / "whole", use_cache=False, prune_below=None) as evaluator:
        whole = evaluator.evaluate(config)  # early stop off: measured to the end, out of bounds all the same
        assert whole.status in ("ok", "unstable") and whole.metrics["tokens_per_s"] > 0 and not whole.feasible
