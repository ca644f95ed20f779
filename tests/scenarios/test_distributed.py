"""Many workers, one Optuna study in a real PostgreSQL, one shared measurement cache; a killed worker's trial
is failed by heartbeat and retried exactly once.

Needs INFERTUNE_TEST_POSTGRES_URL (``bash .ci/postgres`` installs, starts and prints one; `.ci/run` does).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections import Counter

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import REPLAY, ROOT, TINY
from tuner.evaluation.resume import spent_budget
from tuner.records import Status, read_records

POSTGRES = os.environ.get("INFERTUNE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not POSTGRES, reason="INFERTUNE_TEST_POSTGRES_URL not set (bash .ci/postgres)")


def _worker(runs, env, study: str, budget: int, run: str, cache, delay_s: float = 0.0) -> subprocess.Popen:
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(env), "--agent", "optuna",
               "--budget", str(budget), "--storage", POSTGRES, "--study", study, "--run", run, "--cache-dir",
               str(cache), "--heartbeat", "1", "--no-mlflow"]
    variables = {**os.environ, "INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_REPLAY_DELAY_S": str(delay_s)}
    return subprocess.Popen(command, cwd=ROOT, env=variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def _study_records(runs, names) -> list:
    return [record for name in names for record in read_records(runs / name / "records.jsonl")]


def _running_trial(records, study_name: str, run: str, done: int) -> int | None:
    """The trial the run is measuring once it has written `done` records (None when it is between trials)."""
    if len(read_records(records)) < done:
        return None
    running = optuna.load_study(study_name=study_name, storage=POSTGRES).get_trials(states=(TrialState.RUNNING,))
    return next((trial.number for trial in running if trial.user_attrs.get("run") == run), None)


def _measuring(records, study_name: str, run: str, done: int) -> bool:
    """The run is inside a real (2-second) measurement: the same trial still runs 0.2 s later.

    A trial answered from the shared cache, or rejected by the space's constraints, ends in milliseconds:
    killing the worker then would catch it between trials.
    """
    trial = _running_trial(records, study_name, run, done)
    if trial is None:
        return False
    time.sleep(0.2)
    return _running_trial(records, study_name, run, done) == trial


def test_workers_share_a_postgres_study_and_a_dead_workers_trial_is_retried_once(tmp_path):
    replay_study, tiny_study = f"replay-{uuid.uuid4().hex[:8]}", f"tiny-{uuid.uuid4().hex[:8]}"
    cache = tmp_path / "shared-cache"
    replay_runs = ["w0", "w1", "w2"]
    workers = [_worker(tmp_path, REPLAY, replay_study, 12, name, cache, delay_s=2.0) for name in replay_runs]
    tiny = _worker(tmp_path, TINY, tiny_study, 4, "tiny", cache)

    # Kill w2 with SIGKILL in the middle of a real measurement, once it has written a record.
    victim_records = tmp_path / "w2" / "records.jsonl"
    deadline = time.monotonic() + 300
    while not _measuring(victim_records, replay_study, "w2", 1) and time.monotonic() < deadline:
        assert workers[2].poll() is None, workers[2].communicate()[0][-3000:]
        time.sleep(0.05)
    os.killpg(workers[2].pid, signal.SIGKILL)
    workers[2].wait()

    outputs = [process.communicate(timeout=600)[0] for process in (workers[0], workers[1], tiny)]
    for process, output in zip((workers[0], workers[1], tiny), outputs, strict=True):
        assert process.returncode == 0, output[-3000:]

    study = optuna.load_study(study_name=replay_study, storage=POSTGRES)
    complete = [trial for trial in study.trials if trial.state == TrialState.COMPLETE]
    failed = [trial for trial in study.trials if trial.state == TrialState.FAIL]
    assert len(complete) == 12  # the study's budget, spent by all workers together
    assert len(failed) == 1 and failed[0].user_attrs["run"] == "w2"  # the trial w2 was measuring when killed
    retries = [trial for trial in study.trials if trial.system_attrs.get("failed_trial") == failed[0].number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE  # retried exactly once, and finished
    assert retries[0].params == failed[0].params and retries[0].user_attrs["run"] in ("w0", "w1")

    records = _study_records(tmp_path, replay_runs)
    # a trial that proposed a config its worker had already recorded is told that record (marked repeat, no line)
    finished = {trial.number for trial in complete if not trial.user_attrs.get("repeat")}
    recorded = Counter(record.info["optuna_trial"] for record in records if record.info["optuna_trial"] in finished)
    assert set(recorded) == finished and set(recorded.values()) == {1}  # each finished trial recorded once
    # Shared cache, twins wait for each other: no config is measured twice into an outcome the cache serves. An
    # unstable outcome is not cached, so a config the recording has as unstable is measured again when asked again.
    served = Counter(json.dumps(record.config, sort_keys=True) for record in records
                     if spent_budget(record) and Status(record.status).cacheable)
    assert max(served.values()) == 1

    tiny_study_trials = optuna.load_study(study_name=tiny_study, storage=POSTGRES).trials
    assert [trial.state for trial in tiny_study_trials].count(TrialState.COMPLETE) == 4
    tiny_records = read_records(tmp_path / "tiny" / "records.jsonl")
    assert len(tiny_records) == 4 and all(record.status in ("ok", "unstable", "pruned", "infeasible")
                                          for record in tiny_records)  # a worker on a shared study runs no race
    assert all(record.info["optuna_study"] == tiny_study for record in tiny_records)


def test_an_unreachable_storage_is_a_one_line_error(tmp_path):
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "tune", str(REPLAY), "--storage",
               "postgresql://nobody:wrong@127.0.0.1:1/none", "--study", "s", "--budget", "2", "--no-mlflow"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith("infertune: error: --storage: cannot open the study:")
    assert len(result.stderr.strip().splitlines()) == 1
