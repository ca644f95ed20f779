"""Fault injection: each failure gets its status, and the next config measures normally."""

from __future__ import annotations

import dataclasses
import os
import signal
import threading
import time

import pytest

from tests.helpers import fault_evaluator

INSTANT = {"shard_count": 8}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie still answers kill(0); count it as gone
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().split(")")[-1].split()[0] != "Z"


@pytest.mark.parametrize(("fault", "status", "error_type"), [
    ("raise", "error", "InjectedError"),
    ("signal", "crash", "WorkerDied"),
    ("oom", "oom", None),
])
def test_fault_then_normal_measurement(tmp_path, tiny_task, fault, status, error_type):
    with fault_evaluator(tiny_task, tmp_path / "run") as evaluator:
        failed = evaluator.evaluate({}, fault=fault)
        assert failed.status == status
        assert failed.metrics == {} and not failed.feasible
        assert failed.error["message"] and isinstance(failed.error["log_tail"], list)
        if error_type:
            assert failed.error["type"] == error_type
        if fault == "signal":
            assert failed.error["exit_code"] == -signal.SIGABRT and "SIGABRT" in failed.error["message"]
        after = evaluator.evaluate({"batch_size": 2})
        assert after.status in ("ok", "unstable") and after.metrics["tokens_per_s"] > 0


def test_hang_is_killed_by_timeout_with_no_orphan(tmp_path, tiny_task):
    with fault_evaluator(tiny_task, tmp_path / "run") as evaluator:
        # a worker's first answer (its features too) under the task's own timeout: on a busy machine it can take
        # more than 8 s; an instantly infeasible config (8 shards, 2 KV heads)
        assert evaluator.evaluate(INSTANT).status == "infeasible"
        evaluator.task = dataclasses.replace(evaluator.task, timeout_s=8)
        hung_pid = evaluator.measurer.pid
        started = time.monotonic()
        record = evaluator.evaluate({"batch_size": 2}, fault="hang")
        assert record.status == "timeout" and "no answer within 8 s" in record.error["message"]
        assert time.monotonic() - started < 20
        assert not _alive(hung_pid)
        evaluator.task = tiny_task
        assert evaluator.evaluate(INSTANT).status == "infeasible"  # a new worker answers
        assert evaluator.measurer.pid not in (None, hung_pid)


def test_worker_killed_from_outside_is_a_crash(tmp_path, tiny_task):
    with fault_evaluator(tiny_task, tmp_path / "run") as evaluator:
        evaluator.evaluate({})
        victim = evaluator.measurer.pid
        threading.Timer(1.0, os.kill, (victim, signal.SIGKILL)).start()
        record = evaluator.evaluate({}, fault="hang")  # busy when the kill lands
        assert record.status == "crash" and record.error["exit_code"] == -signal.SIGKILL
        assert evaluator.evaluate({}).status in ("ok", "unstable")


def test_records_survive_every_failure(tmp_path, tiny_task):
    with fault_evaluator(tiny_task, tmp_path / "run") as evaluator:
        for fault in ("raise", "signal", None):
            evaluator.evaluate({}, fault=fault)
    lines = (tmp_path / "run" / "records.jsonl").read_text().splitlines()
    assert len(lines) == 3 and '"status":"error"' in lines[0] and '"status":"crash"' in lines[1]
