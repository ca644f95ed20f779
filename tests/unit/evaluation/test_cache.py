"""The measurement cache: a repeated config runs no inference; --no-cache measures again; only ok/infeasible stored."""

from __future__ import annotations

import dataclasses
import json

import pytest

from tests.helpers import ROOT, measure_ok
from tuner.evaluation.evaluator import Evaluator
from tuner.measure.backends.replay import read_recording
from tuner.task import load_task

RECORDING = ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl"


def test_cache_hit_runs_no_inference(tmp_path, tiny_task):
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "first") as evaluator:
        measured = measure_ok(evaluator, {"batch_size": 2})
        assert evaluator.measurer.starts == 1
    with Evaluator(tiny_task, runs / "second") as evaluator:
        hit = evaluator.evaluate({"batch_size": 2})
        assert hit.cached is True
        assert evaluator.measurer.starts == 0  # no worker was even started, so nothing ran
        assert hit.metrics == measured.metrics and hit.run == "second" and hit.trial == 0
        assert hit.objective == measured.objective
        miss = evaluator.evaluate({"batch_size": 4})
        assert miss.cached is False and evaluator.measurer.starts == 1


def test_no_cache_measures_again(tmp_path, tiny_task):
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "first") as evaluator:
        first = evaluator.evaluate({"batch_size": 2})
    with Evaluator(tiny_task, runs / "second", use_cache=False) as evaluator:
        again = evaluator.evaluate({"batch_size": 2})
        assert again.cached is False and evaluator.measurer.starts == 1
        assert again.metrics["tokens_per_s"] != first.metrics["tokens_per_s"]


def _recording_with_status(tmp_path, status: str) -> tuple:
    """A replay task whose recording answers one config with ``status`` (as another tool might have recorded it)."""
    row = next(row for row in read_recording(RECORDING) if row["status"] == "ok")
    if status not in ("ok", "unstable"):
        row = {**row, "metrics": {}, "error": {"type": "Recorded", "message": f"recorded {status}", "log_tail": [],
                                               "exit_code": None}}
    (tmp_path / "recording.jsonl").write_text(json.dumps({**row, "status": status}) + "\n")
    (tmp_path / "task.yaml").write_text(f"id: one-status\nbackend: replay\nrecording: recording.jsonl\n"
                                        f"search_space: {ROOT / 'search_spaces' / 'smollm2-cpu-reduced.yaml'}\n")
    return load_task(tmp_path / "task.yaml"), row["config"]


@pytest.mark.parametrize(("status", "served"), [
    ("ok", True), ("infeasible", True),
    ("unstable", False), ("oom", False), ("crash", False), ("timeout", False), ("error", False),
])
def test_only_ok_and_infeasible_are_served_from_the_cache(tmp_path, status, served):
    task, config = _recording_with_status(tmp_path, status)
    for attempt in ("first", "second"):  # the normal path: no fault injection, the cache on
        with Evaluator(task, tmp_path / "runs" / attempt, cache_dir=tmp_path / "cache") as evaluator:
            record = evaluator.evaluate(config)
            assert record.status == status
    # proposed again: a stored outcome costs nothing; any other is measured again and costs a measurement
    assert record.cached is served and evaluator.measurements == (0 if served else 1)
    assert len(list((tmp_path / "cache").glob("*.json"))) == (1 if served else 0)


def test_a_real_timeout_is_not_cached_and_is_measured_again(tmp_path, tiny_task):
    cache = tmp_path / "cache"
    hurried = dataclasses.replace(tiny_task, timeout_s=0.5)  # loading + 3 repeats of >= 0.3 s cannot fit
    with Evaluator(hurried, tmp_path / "runs" / "hurried", cache_dir=cache) as evaluator:
        assert evaluator.evaluate({"batch_size": 2}).status == "timeout"
    with Evaluator(tiny_task, tmp_path / "runs" / "again", cache_dir=cache) as evaluator:
        again = evaluator.evaluate({"batch_size": 2})
        assert again.cached is False and again.status in ("ok", "unstable") and evaluator.measurements == 1
    with Evaluator(tiny_task, tmp_path / "runs" / "third", cache_dir=cache) as evaluator:
        third = evaluator.evaluate({"batch_size": 2})
        assert third.cached is (again.status == "ok")  # an unstable outcome is measured a third time


def test_a_constraint_violation_is_not_cached(tmp_path, tiny_task):
    with Evaluator(tiny_task, tmp_path / "runs" / "run", cache_dir=tmp_path / "cache") as evaluator:
        record = evaluator.evaluate({"compile": True, "cache_implementation": "dynamic"})
        assert record.status == "infeasible" and record.error["type"] == "ConstraintViolated"
        assert evaluator.measurements == 0 and evaluator.measurer.starts == 0
    assert list((tmp_path / "cache").glob("*.json")) == []
