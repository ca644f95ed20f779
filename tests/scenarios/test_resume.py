"""Resume: a run killed (SIGKILL) mid-way and resumed re-measures nothing finished and ends as if never killed."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from tests.helpers import REPLAY, ROOT, TINY
from tuner.records import read_records


def _tune(runs, env, *extra: str, kill_after: int | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(env), "--no-mlflow", *extra]
    variables = {**os.environ}
    if kill_after is not None:
        variables.update({"INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_KILL_AFTER_RECORDS": str(kill_after)})
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env=variables, timeout=900)


def _outcomes(run_dir) -> list[tuple]:
    return [(record.trial, json.dumps(record.config, sort_keys=True), record.status, record.cached,
             json.dumps(record.metrics, sort_keys=True), record.objective)
            for record in read_records(run_dir / "records.jsonl")]


@pytest.mark.parametrize("agent", ["optuna", "random", "ppo", "ppo-learning"])
def test_killed_and_resumed_equals_uninterrupted(tmp_path, agent):
    chosen = ("--agent", "ppo", "--policy", "none") if agent == "ppo-learning" else ("--agent", agent)
    settings = (*chosen, "--budget", "12", "--seed", "3")
    whole = _tune(tmp_path, REPLAY, *settings, "--run", "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = _tune(tmp_path, REPLAY, *settings, "--run", "killed", kill_after=5)
    assert killed.returncode == -signal.SIGKILL
    assert len(read_records(tmp_path / "killed" / "records.jsonl")) == 5
    resumed = _tune(tmp_path, REPLAY, "--resume", "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming killed (5 records taken)" in resumed.stdout
    assert resumed.stdout.count("[from the interrupted run]") == 5
    assert _outcomes(tmp_path / "killed") == _outcomes(tmp_path / "whole")
    summaries = [json.loads((tmp_path / name / "summary.json").read_text()) for name in ("whole", "killed")]
    assert summaries[0]["best"]["config"] == summaries[1]["best"]["config"]
    assert summaries[0]["measurements"] == summaries[1]["measurements"] == 12
    assert summaries[1]["resumed_records"] == 5


def test_resume_refuses_another_agent_and_unknown_runs(tmp_path):
    assert _tune(tmp_path, REPLAY, "--agent", "random", "--budget", "3", "--run", "r").returncode == 0
    other = _tune(tmp_path, REPLAY, "--resume", "r", "--agent", "optuna")
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1
    assert "--agent: the run was started with 'random'; a resumed run keeps it (got 'optuna')" in other.stderr
    missing = _tune(tmp_path, REPLAY, "--resume", "nope")
    assert missing.returncode == 2 and "--resume: no run.json in" in missing.stderr
    assert "Traceback" not in missing.stderr


def test_tiny_model_run_killed_after_three_trials_resumes_with_every_trial_once(tmp_path):
    # the tiny task without compile (20 s of warmup a config here): what is tested is the resume
    space = tmp_path / "space.yaml"
    space.write_text("id: tiny-quick\nversion: 1\nknobs:\n  batch_size: {type: int, choices: [1, 2, 4, 8]}\n"
                     "  dtype: {type: categorical, choices: [float32, bfloat16]}\n")
    task = tmp_path / "tiny.yaml"
    task.write_text(TINY.read_text().replace("search_space: hf-transformers", f"search_space: {space}"))
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "tune", str(task), "--agent",
               "optuna", "--budget", "6", "--run", "tiny", "--no-mlflow"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    records_path = tmp_path / "tiny" / "records.jsonl"
    deadline = time.monotonic() + 600
    while len(read_records(records_path)) < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.1)
    os.killpg(process.pid, signal.SIGKILL)  # kill -9 the tuner and its measurement worker
    process.wait()
    before = read_records(records_path)
    assert len(before) >= 3
    resumed = _tune(tmp_path, task, "--resume", "tiny")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = read_records(records_path)
    assert [record.trial for record in records] == list(range(len(records)))  # every trial once, in order
    assert records[:len(before)] == before  # nothing finished was lost or re-measured
    # the race at the end measures its contenders again on purpose; the search never does after a servable outcome
    measured = [record for record in records if not record.cached and "confirms" not in record.info]
    for position, record in enumerate(measured):  # measured again only after an outcome the cache may not serve
        again = [later for later in measured[position + 1:] if later.config == record.config]
        assert not again or record.status not in ("ok", "infeasible"), record.config
    summary = json.loads((tmp_path / "tiny" / "summary.json").read_text())
    assert summary["trials"] == len(records) and summary["measurements"] == 6 + summary["confirmations"]
