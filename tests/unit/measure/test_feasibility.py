"""Feasibility follows the cores this process may really use: pinned to one core, shard_count 2 is infeasible.

The probe runs in a subprocess whose CPU affinity is set before it starts (as `taskset -c 0` or a container's
CPU limit would), so nothing in the code under test is patched and the worker inherits the same limit.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, TINY
from tuner.evaluation.evaluator import Evaluator

CORES = sorted(os.sched_getaffinity(0))
pytestmark = pytest.mark.skipif(len(CORES) < 2, reason="needs 2 usable cores to compare 1 with 2")

PROBE = """
import json, sys
from pathlib import Path
from tuner.evaluation.evaluator import Evaluator
from tuner.task import load_task
task_file, run, cache, measure = sys.argv[1:5]
with Evaluator(load_task(task_file), Path(run), cache_dir=Path(cache)) as evaluator:
    allowed = evaluator.runnable_values()["shard_count"]
    record = evaluator.evaluate({"shard_count": 2}).to_dict() if measure == "yes" else None
print(json.dumps({"allowed": allowed, "record": record}))
"""


def _probe(cores: list[int], run: Path, cache: Path, measure: bool = False) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, str(TINY), str(run), str(cache), "yes" if measure else "no"],
                            capture_output=True, text=True, cwd=ROOT, timeout=600,
                            preexec_fn=lambda: os.sched_setaffinity(0, cores))
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.splitlines()[-1])


def test_shard_count_two_is_runnable_on_two_cores_only(tmp_path):
    assert _probe(CORES[:1], tmp_path / "one", tmp_path / "cache")["allowed"] == [1]
    assert _probe(CORES[:2], tmp_path / "two", tmp_path / "cache")["allowed"] == [1, 2]


def test_infeasible_on_one_core_is_cached_for_one_core_only(tmp_path, tiny_task):
    cache = tmp_path / "cache"
    pinned = _probe(CORES[:1], tmp_path / "pinned", cache, measure=True)["record"]
    assert pinned["status"] == "infeasible" and pinned["cached"] is False
    assert pinned["error"]["message"] == "shard_count 2 exceeds the 1 CPU cores visible here"
    assert pinned["fingerprint"]["cpu_cores"] == 1
    again = _probe(CORES[:1], tmp_path / "again", cache, measure=True)["record"]
    assert again["cached"] is True and again["status"] == "infeasible"  # the same machine facts: served
    with Evaluator(tiny_task, tmp_path / "wider", cache_dir=cache) as evaluator:  # this process: 2+ cores
        assert evaluator.lookup(tiny_task.space.complete({"shard_count": 2})) is None
