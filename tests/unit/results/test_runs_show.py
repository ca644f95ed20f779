"""``infertune runs`` finds every run again; ``infertune show RUN`` answers best config, how sure, what it cost."""

from __future__ import annotations

import dataclasses
import json
import shutil

import pytest

from tests.helpers import REPLAY, infertune


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A finished tune, a compare and a measure run on the replay task, and a tune run cut off before its end."""
    folder = tmp_path_factory.mktemp("runs")
    for args in (("tune", str(REPLAY), "--agent", "random", "--budget", "6", "--run", "t1"),
                 ("compare", str(REPLAY), "--agents", "optuna,random", "--budget", "4", "--seeds", "2", "--run", "c1"),
                 ("measure", str(REPLAY), "--set", "batch_size=1,4", "--run", "m1")):
        result = infertune(*args, "--no-mlflow", runs=folder)
        assert result.returncode == 0, result.stderr
    cut = folder / "cut"
    shutil.copytree(folder / "t1", cut)
    (cut / "summary.json").unlink()  # as a kill leaves it: run.json and records, no summary
    return folder


def test_runs_lists_every_run_with_its_task_agent_budget_best_and_state(runs):
    result = infertune("runs", runs=runs)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines()[2:]}
    assert set(rows) == {"t1", "c1", "m1", "cut"}  # cache/, models/ and the compare's seed runs are not runs
    summary = json.loads((runs / "t1" / "summary.json").read_text())
    assert rows["t1"][1:6] == ["tune", "smollm2-cpu-replay", "random", "6", "6"]
    assert rows["t1"][6] == f"{summary['best']['objective']:.3f}" and rows["t1"][7] == "finished"
    assert rows["cut"][7] == "interrupted" and rows["cut"][6] == rows["t1"][6]
    assert rows["c1"][1:5] == ["compare", "smollm2-cpu-replay", "optuna,random", "4"]
    assert rows["c1"][5] == "16" and rows["c1"][7] == "finished"  # 2 agents x 2 seeds x 4 measurements
    assert rows["m1"][1] == "measure" and rows["m1"][5] == "2" and rows["m1"][7] == "measured"


def test_show_answers_best_certainty_and_cost(runs):
    result = infertune("show", "t1", runs=runs)
    assert result.returncode == 0, result.stderr
    summary = json.loads((runs / "t1" / "summary.json").read_text())
    best = summary["best"]
    text = result.stdout
    assert f"best deployable config: trial {best['trial']} (t1), objective {best['objective']:.3f}" in text
    assert " ".join(f"{name}={str(value).lower() if isinstance(value, bool) else value}"
                    for name, value in best["config"].items()) in text
    assert f"timing: {best['metrics']['repeats']} repeats" in text and "runner-up: trial" in text
    assert "6 measurements, 6 trials (0 from the cache)" in text
    assert f"wall time {summary['duration_s']:.0f} s" in text
    # replayed: the recording's figures, no run
    assert "compile and first-call setup" not in text and "inference" not in text


def test_show_of_a_compare_run_has_the_agents_table(runs):
    result = infertune("show", "c1", runs=runs)
    assert result.returncode == 0, result.stderr
    assert "measurements to 95% (mean)" in result.stdout and "optuna" in result.stdout


@pytest.mark.parametrize("name", ["nope", "../t1", "cache"])
def test_show_of_no_such_run_is_one_line(runs, name):
    result = infertune("show", name, runs=runs)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines() == [
        f"infertune: error: RUN: no run of that name under {runs} (infertune runs lists them) (got {name!r})"]


def test_a_failed_measurements_time_is_its_own_part_not_worker_overhead(runs):
    from tuner.records import read_records
    from tuner.results.costs import time_split

    measured = read_records(runs / "t1" / "records.jsonl")[0]
    timed_out = dataclasses.replace(measured, status="timeout", metrics={}, info={}, duration_s=900.0,
                                    error={"type": "Timeout", "message": "no answer within 900 s"})
    split = time_split([timed_out], None)
    assert split["failed measurements"] == 900.0 and split["worker overhead"] == 0.0


def test_the_split_charges_a_compile_and_the_reference_as_overhead_and_the_warm_call_as_inference(runs):
    from tuner.records import read_records
    from tuner.results.costs import overhead_share, time_split

    measured = read_records(runs / "t1" / "records.jsonl")[0]
    # a compiled config: a 30 s warm-up whose call alone takes 3 s; 10 s of accuracy, 6 of them the reference's
    compiled = dataclasses.replace(measured, status="ok", duration_s=65.0,
                                   metrics={"warmup_s": 30.0, "latency_p50_s": 3.0},
                                   info={"load_s": 2.0, "inference_s": 50.0, "accuracy_s": 10.0, "reference_s": 6.0})
    split = time_split([compiled], 65.0)
    assert split["compile and first-call setup"] == 27.0 and split["inference"] == 23.0
    assert split["reference answers"] == 6.0 and split["accuracy scoring"] == 4.0
    assert split["loading"] == 2.0 and split["worker overhead"] == 3.0 and split["tuner overhead"] == 0.0
    assert overhead_share(split) == pytest.approx((27 + 6 + 2 + 3) / 65)
    assert overhead_share(dict.fromkeys(split, 0.0)) is None


def test_the_overhead_of_a_trial_is_averaged_over_trials_not_pooled(runs):
    from tuner.records import read_records
    from tuner.results.costs import trial_overhead_mean

    measured = read_records(runs / "t1" / "records.jsonl")[0]
    compiled = dataclasses.replace(measured, status="ok", duration_s=65.0, cached=False,
                                   metrics={"warmup_s": 30.0, "latency_p50_s": 3.0},
                                   info={"load_s": 2.0, "inference_s": 50.0, "accuracy_s": 10.0, "reference_s": 6.0})
    # pruned on accuracy before any timing: 1.7 s of loading, 0.3 s of the config's own scoring
    pruned = dataclasses.replace(measured, status="pruned", duration_s=2.0, cached=False, metrics={},
                                 info={"load_s": 1.7, "accuracy_s": 0.3, "pruned": {"stage": "accuracy"}})
    served = dataclasses.replace(measured, cached=True)  # a cache hit ran nothing
    assert trial_overhead_mean([compiled, pruned, served]) == pytest.approx((38 / 65 + 1.7 / 2.0) / 2)
    assert trial_overhead_mean([served]) is None
