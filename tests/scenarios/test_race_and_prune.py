"""``tune`` on a live model confirms its winner in a race and prunes hopeless configs; --confirm 0 and --no-prune
turn each off, and a resumed run keeps what the run started with."""

from __future__ import annotations

import json

import pytest

from tests.helpers import infertune, tiny_without_compile
from tuner.records import read_records


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return tiny_without_compile(tmp_path_factory.mktemp("quick"))


def test_the_winner_is_raced_before_it_is_named(task, tmp_path):
    runs = tmp_path / "runs"
    done = infertune("tune", str(task), "--agent", "random", "--budget", "4", "--confirm", "2", "--run", "raced",
                     "--no-mlflow", runs=runs)
    assert done.returncode == 0, done.stderr
    summary = json.loads((runs / "raced" / "summary.json").read_text())
    records = read_records(runs / "raced" / "records.jsonl")
    confirming = [record for record in records if "confirms" in record.info]
    assert 1 <= summary["race"]["measurements"] == len(confirming) == summary["confirmations"] <= 2
    assert summary["measurements"] == 4 + len(confirming)  # confirmations come beyond the budget
    assert not any(record.cached for record in confirming)  # measured afresh, never the cache's answer
    raced = {json.dumps(row["config"], sort_keys=True) for row in summary["race"]["contenders"]}
    assert json.dumps(summary["best"]["config"], sort_keys=True) in raced
    assert "[confirm] trial 4 confirms trial" in done.stdout and "race ended: " in done.stdout
    assert "confirmed: measured " in done.stdout


def test_confirm_0_and_no_prune_measure_every_config_once_and_whole_and_resume_keeps_them(task, tmp_path):
    runs = tmp_path / "runs"
    done = infertune("tune", str(task), "--agent", "random", "--budget", "3", "--confirm", "0", "--no-prune",
                     "--run", "plain", "--no-mlflow", runs=runs)
    assert done.returncode == 0, done.stderr
    settings = json.loads((runs / "plain" / "run.json").read_text())
    assert settings["confirm"] == 0 and settings["no_prune"] is True
    records = read_records(runs / "plain" / "records.jsonl")
    assert len(records) == 3 and all(record.status in ("ok", "unstable") for record in records)
    assert "not confirmed (measured once, no race)" in done.stdout and "race ended" not in done.stdout
    again = infertune("tune", str(task), "--resume", "plain", "--budget", "4", "--no-mlflow", runs=runs)
    assert again.returncode == 0, again.stderr
    assert "race ended" not in again.stdout and len(read_records(runs / "plain" / "records.jsonl")) == 4


def test_a_bad_confirmation_budget_is_one_line(task, tmp_path):
    done = infertune("tune", str(task), "--confirm", "-1", runs=tmp_path / "runs")
    assert done.returncode == 2 and done.stderr.count("\n") == 1
    assert "--confirm" in done.stderr and "'-1'" in done.stderr
