"""The measurement cache: a repeated config runs no inference; --no-cache measures again."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from tuner.evaluator import Evaluator


def test_cache_hit_runs_no_inference(tmp_path, tiny_task):
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "first") as evaluator:
        measured = evaluator.evaluate({"batch_size": 2})
        assert measured.cached is False and evaluator.worker.starts == 1
    with Evaluator(tiny_task, runs / "second") as evaluator:
        hit = evaluator.evaluate({"batch_size": 2})
        assert hit.cached is True
        assert evaluator.worker.starts == 0  # no worker was even started, so nothing ran
        assert hit.metrics == measured.metrics and hit.run == "second" and hit.trial == 0
        assert hit.objective == measured.objective
        miss = evaluator.evaluate({"batch_size": 4})
        assert miss.cached is False and evaluator.worker.starts == 1


def test_no_cache_measures_again(tmp_path, tiny_task):
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "first") as evaluator:
        first = evaluator.evaluate({"batch_size": 2})
    with Evaluator(tiny_task, runs / "second", use_cache=False) as evaluator:
        again = evaluator.evaluate({"batch_size": 2})
        assert again.cached is False and evaluator.worker.starts == 1
        assert again.metrics["tokens_per_s"] != first.metrics["tokens_per_s"]


def test_failures_are_not_cached(tmp_path, tiny_task):
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "first", worker_env={"INFERTUNE_ENABLE_FAULTS": "1"}) as evaluator:
        assert evaluator.evaluate({"batch_size": 2}, fault="raise").status == "error"
    with Evaluator(tiny_task, runs / "second") as evaluator:
        record = evaluator.evaluate({"batch_size": 2})
        assert record.cached is False and record.status in ("ok", "unstable")


def test_cache_key_depends_on_config_and_workload(tiny_task):
    evaluator = Evaluator(tiny_task, Path("/nonexistent/run"))
    base = evaluator.key(tiny_task.space.complete({}))
    assert base == evaluator.key(tiny_task.space.complete({}))
    assert base != evaluator.key(tiny_task.space.complete({"batch_size": 2}))
    longer = dataclasses.replace(tiny_task, workload=dataclasses.replace(tiny_task.workload, new_tokens=9))
    assert base != Evaluator(longer, Path("/nonexistent/run")).key(tiny_task.space.complete({}))
