"""``infertune tune`` and ``infertune compare`` as a user runs them."""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.helpers import REPLAY, infertune, tiny_without_compile


def _check_run(run_dir: Path, budget: int) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    confirming = [r for r in records if "confirms" in r["info"]]  # a live run races its best configs at the end
    assert summary["measurements"] == budget + len(confirming) and summary["trials"] == len(records)
    best = summary["best"]
    ranked = [r for r in records if r["status"] == "ok" and r["feasible"]]
    if not ranked:  # e.g. every timing unstable on a loaded machine: then nothing may be called best
        assert best is None
        return summary
    if confirming:  # after a race: a raced config, by its mean score over its measurements
        raced = [row["config"] for row in summary["race"]["contenders"]]
        assert best["config"] in raced and best["config"] in [r["config"] for r in ranked]
    else:
        assert best["objective"] == max(r["objective"] for r in ranked)  # really the best of its records
    assert best["config"] in [r["config"] for r in ranked]
    assert (run_dir / "pareto.png").stat().st_size > 10_000
    for point in summary["pareto"]:
        assert point["status"] in ("ok", "unstable")
    return summary


@pytest.mark.parametrize("agent,extra", [("random", ()), ("optuna", ()), ("ppo", ()), ("ppo", ("--policy", "none"))])
def test_tune_replay(tmp_path, agent, extra):
    result = infertune("tune", str(REPLAY), "--agent", agent, *extra, "--budget", "10", "--seed", "2", "--run", "r",
                       "--no-mlflow", runs=tmp_path)  # the MLflow mirror is unit/tracking/test_tracking.py's subject
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"tuning smollm2-cpu-replay with {agent}: budget 10")
    assert any(line.startswith("[10/10] trial") for line in lines)
    assert "best deployable config" in result.stdout and "Pareto front" in result.stdout
    assert _check_run(tmp_path / "r", 10)["best"] is not None  # a replayed landscape always has a best
    if extra:  # PPO learning on the task saves what it learned
        assert (tmp_path / "r" / "policy.zip").is_file()


@pytest.mark.parametrize("agent", ["random", "optuna", "ppo"])
def test_tune_tiny_model(tmp_path, agent):
    result = infertune("tune", str(tiny_without_compile(tmp_path)), "--agent", agent, "--budget", "4", "--run", "t",
                       "--no-mlflow", runs=tmp_path / "runs")
    assert result.returncode == 0, result.stderr
    _check_run(tmp_path / "runs" / "t", 4)


@pytest.mark.parametrize(("args", "fragment"), [
    (["--budget", "0"], "--budget: must be a positive number of measurements (got 0)"),
    (["--agent", "genetic"], "--agent: unknown agent"),
    (["--sampler", "bohb"], "--sampler: unknown sampler"),
])
def test_tune_user_errors(tmp_path, args, fragment):
    result = infertune("tune", str(REPLAY), *args, runs=tmp_path)
    assert result.returncode == 2 and fragment in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_compare_on_replay(tmp_path):
    result = infertune("compare", str(REPLAY), "--agents", "ppo,optuna,random", "--budget", "12", "--seeds", "2",
                       "--run", "c", "--no-mlflow", runs=tmp_path)
    assert result.returncode == 0, result.stderr
    out = tmp_path / "c"
    rows = list(csv.DictReader((out / "compare.csv").read_text().splitlines()))
    assert [row["agent"] for row in rows] == ["ppo", "optuna", "random"]
    curves = list(csv.DictReader((out / "curves.csv").read_text().splitlines()))
    assert len(curves) == 3 * 2 * 12
    report = json.loads((out / "compare.json").read_text())
    assert report["best_known"] > 0 and (out / "best_so_far.png").stat().st_size > 10_000
    inside, best = _landscape(REPLAY)
    assert report["best_known"] == best
    for row in report["agents"]:  # measurements to 95%, counted again from each seed's records
        hits = [_first_reaching(out / f"{row['agent']}-seed{seed}" / "records.jsonl", inside, 0.95 * best)
                for seed in (0, 1)]
        counted = [hit if hit is not None else 13 for hit in hits]  # unreached: budget + 1
        assert row["reached"] == sum(hit is not None for hit in hits)
        assert (row["to95_min"], row["to95_max"], row["to95_mean"]) == (min(counted), max(counted), sum(counted) / 2)
    assert any(row["reached"] for row in report["agents"])  # the count was checked on real hits, not only misses
    assert "measurements to 95%" in result.stdout


def _landscape(task_file: Path) -> tuple[Callable[[dict], bool], float]:
    """(inside the task's bounds?, best feasible tokens/s), read from the task and its recording, not via tuner."""
    import yaml

    task = yaml.safe_load(task_file.read_text())
    bounds = task["objective"]["constraints"]

    def inside(row: dict) -> bool:
        return (row["status"] == "ok" and row["metrics"]["latency_p95_s"] <= bounds["latency_p95_s"]["max"]
                and row["metrics"]["top1_agree"] >= bounds["top1_agree"]["min"])

    rows = [json.loads(line) for line in (task_file.parent / task["recording"]).read_text().splitlines()]
    return inside, max(row["metrics"]["tokens_per_s"] for row in rows if inside(row))


def _first_reaching(records_file: Path, inside: Callable[[dict], bool], target: float) -> int | None:
    """Measurements spent when a record first reached ``target`` (cache hits and rejections spend none)."""
    spent = 0
    for line in records_file.read_text().splitlines():
        record = json.loads(line)
        rejected = (record["error"] or {}).get("type") == "ConstraintViolated"
        spent += not record["cached"] and not rejected
        if inside(record) and record["metrics"]["tokens_per_s"] >= target:
            return spent
    return None


@pytest.mark.parametrize("extra,agent,why", [((), "coordinate", "the default: coordinate search"),
                                              (("--sampler", "gp"), "optuna", "--sampler given")])
def test_tune_without_agent_runs_the_default_and_says_why(tmp_path, extra, agent, why):
    result = infertune("tune", str(REPLAY), *extra, "--budget", "3", "--run", "d", "--no-mlflow", runs=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"tuning smollm2-cpu-replay with {agent}: budget 3")
    assert lines[1].startswith(f"  agent {agent}: {why}")
    assert json.loads((tmp_path / "d" / "run.json").read_text())["agent"] == agent  # --resume keeps it
