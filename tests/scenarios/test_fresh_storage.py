"""Workers joining one study: started at the same moment on a new, empty database, they all join (the schema
is made once), and a trial whose worker died before claiming it does not stall the others.

PostgreSQL (a database this test creates and drops, so nothing earlier runs left can help) and SQLite.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from tests.helpers import REPLAY, ROOT
from tuner.records import read_records

POSTGRES = os.environ.get("INFERTUNE_TEST_POSTGRES_URL")
WORKERS = 4
BUDGET = 8


def _start_workers(runs: Path, storage: str, study: str) -> list[subprocess.Popen]:
    """WORKERS tune processes on one study, all started before any has opened the storage."""
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(REPLAY), "--agent", "optuna",
               "--budget", str(BUDGET), "--storage", storage, "--study", study, "--cache-dir", str(runs / "cache"),
               "--heartbeat", "1", "--no-mlflow"]
    return [subprocess.Popen([*command, "--run", f"w{index}"], cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, start_new_session=True)
            for index in range(WORKERS)]


def _assert_all_joined_and_budget_spent_once(runs: Path, storage: str, study_name: str) -> None:
    workers = _start_workers(runs, storage, study_name)
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]
    for index, (worker, output) in enumerate(zip(workers, outputs, strict=True)):
        assert worker.returncode == 0, f"w{index} exited {worker.returncode}:\n{output[-2000:]}"

    study = optuna.load_study(study_name=study_name, storage=storage)
    states = Counter(trial.state for trial in study.trials)
    assert states == {TrialState.COMPLETE: BUDGET}  # the shared budget, spent exactly once, nothing failed
    records = [record for index in range(WORKERS) for record in read_records(runs / f"w{index}" / "records.jsonl")]
    recorded = Counter(record.info["optuna_trial"] for record in records)
    # a trial that proposed a config its worker had already recorded is told that record again (marked repeat,
    # no new record line); every other trial is recorded
    assert sorted(recorded) == sorted(trial.number for trial in study.trials if not trial.user_attrs.get("repeat"))
    assert set(recorded.values()) == {1}  # every trial recorded by exactly one worker


@contextlib.contextmanager
def _fresh_postgres_database() -> Iterator[str]:
    """A new empty database on the test server (the role may create databases), dropped afterwards."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(POSTGRES)
    name = f"infertune_fresh_{uuid.uuid4().hex[:10]}"
    admin = dict(host=url.host, port=url.port or 5432, user=url.username, password=url.password,
                 dbname=url.database, autocommit=True)
    with psycopg.connect(**admin) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(**admin) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.skipif(not POSTGRES, reason="INFERTUNE_TEST_POSTGRES_URL not set (bash .ci/postgres)")
def test_workers_started_together_on_an_empty_postgres_database_all_join(tmp_path):
    with _fresh_postgres_database() as storage:
        _assert_all_joined_and_budget_spent_once(tmp_path, storage, "fresh")


@pytest.mark.parametrize("attempt", range(3))
def test_workers_started_together_on_a_new_sqlite_file_all_join(tmp_path, attempt):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    _assert_all_joined_and_budget_spent_once(tmp_path, storage, "st")


def test_a_trial_left_unclaimed_by_a_dead_worker_is_failed_and_retried_once(tmp_path):
    storage = f"sqlite:///{tmp_path / 's.db'}"
    # What a worker killed between ask and its first heartbeat leaves: a RUNNING trial nobody claimed.
    orphan = optuna.create_study(storage=storage, study_name="st", directions=["maximize"]).ask()
    orphan_number = orphan.number
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "tune", str(REPLAY), "--agent",
               "optuna", "--budget", "3", "--storage", storage, "--study", "st", "--run", "alive", "--heartbeat",
               "1", "--no-mlflow"]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]

    trials = optuna.load_study(study_name="st", storage=storage).trials
    assert trials[orphan_number].state == TrialState.FAIL
    assert Counter(trial.state for trial in trials) == {TrialState.COMPLETE: 3, TrialState.FAIL: 1}
    retries = [trial for trial in trials if trial.system_attrs.get("failed_trial") == orphan_number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE and retries[0].user_attrs["run"] == "alive"
