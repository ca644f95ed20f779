"""Two workers of the pretrained policy on one study in a real PostgreSQL: one history, one budget, no config
measured twice, one best.

Needs INFERTUNE_TEST_POSTGRES_URL (``bash .ci/postgres`` installs, starts and prints one; `.ci/run` does).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import REPLAY, ROOT
from tuner.evaluation.resume import spent_budget
from tuner.records import read_records

POSTGRES = os.environ.get("INFERTUNE_TEST_POSTGRES_URL")
pytestmark = pytest.mark.skipif(not POSTGRES, reason="INFERTUNE_TEST_POSTGRES_URL not set (bash .ci/postgres)")


def _worker(runs, study: str, run: str) -> subprocess.Popen:
    # Each worker its own cache: a config measured twice would be measured twice, not answered from a shared cache.
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(REPLAY), "--agent", "ppo",
               "--budget", "8", "--storage", POSTGRES, "--study", study, "--run", run, "--cache-dir",
               str(runs / f"cache-{run}"), "--heartbeat", "1", "--no-mlflow"]
    variables = {**os.environ, "INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_REPLAY_DELAY_S": "0.5"}
    return subprocess.Popen(command, cwd=ROOT, env=variables, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)


def test_policy_workers_share_one_history_and_never_measure_a_config_twice(tmp_path):
    study = f"policy-{uuid.uuid4().hex[:8]}"
    workers = [_worker(tmp_path, study, name) for name in ("first", "second")]
    outputs = [worker.communicate(timeout=600)[0] for worker in workers]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output[-3000:]
        assert "tuning smollm2-cpu-replay with ppo" in output
    records = [record for name in ("first", "second") for record in read_records(tmp_path / name / "records.jsonl")]
    measured = [json.dumps(record.config, sort_keys=True) for record in records if spent_budget(record)]
    assert len(measured) == 8 == len(set(measured))  # the study's budget, each config once across both workers
    assert all(read_records(tmp_path / name / "records.jsonl") for name in ("first", "second"))  # both worked
    trials = optuna.load_study(study_name=study, storage=POSTGRES).get_trials(states=(TrialState.COMPLETE,))
    assert len(trials) == 8
    told = {(trial.user_attrs["run"], trial.user_attrs["record_trial"]): trial for trial in trials}
    for record in records:  # each record is one trial of the shared history, told its score
        trial = told[(record.run, record.trial)]
        assert trial.user_attrs["config"] == record.config and trial.value == record.objective
        assert record.info["study"] == study and record.info["study_trial"] == trial.number
    best = max(trials, key=lambda trial: trial.value)
    assert best.value == max(record.objective for record in records)  # one best, whichever worker measured it
