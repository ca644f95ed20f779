"""A metric may be null (a foreign recording, a backend that cannot read it): every output shows ``n/a``.

A replay recording with null in every optional metric (and, in one variant, in ``tokens_per_s`` of most
records too) goes through ``tune`` with each agent, ``compare``, ``export`` and ``sync`` as a user runs them;
the pieces (Pareto front, plot, observation, export header) are checked on their own as well.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import OPTIONAL, ROOT, null_recording
from tuner.records import Record

VARIANTS = ("optional", "throughput")  # null in every optional metric; and in tokens_per_s of 2 records in 3


def infertune(*args: str, runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env=os.environ.copy())


def _clean(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("agent", ["random", "optuna", "ppo"])
def test_tune_shows_missing_metrics_as_na(tmp_path, agent, variant):
    task = null_recording(tmp_path, variant)
    result = infertune("tune", str(task), "--agent", agent, "--budget", "8", "--run", "t", "--no-mlflow",
                       runs=tmp_path / "runs")  # null metrics in MLflow: test_export_and_sync_of_a_run_with_nulls
    _clean(result)
    trial_lines = [line for line in result.stdout.splitlines() if line.startswith("[") and "| ok " in line]
    assert trial_lines and all("p95 n/a s top1 n/a mem n/a MB" in line for line in trial_lines)
    if variant == "throughput":
        assert any("| ok n/a tok/s p95" in line for line in trial_lines)
    assert "p95 n/a s, top1 n/a, kl n/a, n/a MB" in result.stdout  # the best config's line
    assert "Pareto front (tokens/s; latency p95, top1_agree, memory n/a for some config, not weighed)" in result.stdout
    front = result.stdout.split("Pareto front")[1].splitlines()[3]  # the first row under the header
    assert front.split()[-3:] == ["n/a", "n/a", "n/a"]
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    assert summary["best"]["metrics"]["peak_mem_mb"] is None and summary["best"]["metrics"]["tokens_per_s"] > 0
    assert len(summary["pareto"]) == 1  # only throughput is known: one config is best on it
    assert (tmp_path / "runs" / "t" / "pareto.png").stat().st_size > 10_000
    header = (tmp_path / "runs" / "t" / "export" / "vllm.yaml").read_text().splitlines()[3]
    assert header.startswith("# measured: tokens_per_s ") and "latency_p95_s n/a" in header
    assert "peak_mem_mb n/a" in header and "top1_agree n/a" in header


def test_compare_with_nothing_measurable(tmp_path):
    """The objective's metric is null everywhere: nothing is feasible, the table says n/a, nothing crashes."""
    task = null_recording(tmp_path, "optional", objective="minimize: latency_p95_s")
    result = infertune("compare", str(task), "--agents", "ppo,optuna,random", "--budget", "4", "--seeds", "1",
                       "--run", "c", "--no-mlflow", runs=tmp_path / "runs")
    _clean(result)
    rows = [line.split() for line in result.stdout.splitlines() if line.split()[:1] in (["ppo"], ["optuna"],
                                                                                       ["random"])]
    table_rows = [row for row in rows if "0/1" in row]
    assert len(table_rows) == 3 and all(row[-2:] == ["n/a", "n/a"] for row in table_rows)  # final best, regret
    assert all(line.endswith("best latency_p95_s n/a after 4 measurements") for line in result.stdout.splitlines()
               if " seed 0: " in line)
    report = json.loads((tmp_path / "runs" / "c" / "compare.json").read_text())
    assert all(row["reached"] == 0 and row["to95_min"] == 5 for row in report["agents"])
    assert (tmp_path / "runs" / "c" / "best_so_far.png").stat().st_size > 10_000


def test_compare_with_null_throughput(tmp_path):
    task = null_recording(tmp_path, "throughput")
    result = infertune("compare", str(task), "--agents", "ppo,optuna,random", "--budget", "6", "--seeds", "1",
                       "--run", "c", "--no-mlflow", runs=tmp_path / "runs")
    _clean(result)
    report = json.loads((tmp_path / "runs" / "c" / "compare.json").read_text())
    known = [row["metrics"]["tokens_per_s"] for row in map(json.loads, (tmp_path / "nulls.jsonl").open())
             if row["status"] == "ok" and row["metrics"]["tokens_per_s"] is not None]
    assert report["best_known"] == max(known)


def test_export_and_sync_of_a_run_with_nulls(tmp_path):
    task = null_recording(tmp_path, "throughput")
    runs = tmp_path / "runs"
    _clean(infertune("tune", str(task), "--agent", "random", "--budget", "8", "--run", "t", "--no-mlflow", runs=runs))
    exported = infertune("export", "t", "--to", "all", "--out", str(tmp_path / "out"), runs=runs)
    _clean(exported)
    assert exported.stdout.startswith("exported trial ")
    for name in ("vllm.yaml", "sglang.yaml", "tgi.sh", "trtllm.yaml"):
        text = (tmp_path / "out" / name).read_text()
        assert "ttft_s n/a, tpot_s n/a, top1_agree n/a, kl n/a, peak_mem_mb n/a" in text
    hf = json.loads((tmp_path / "out" / "hf.json").read_text())
    assert any("peak_mem_mb n/a" in line for line in hf["comment"])
    synced = infertune("sync", "t", runs=runs)
    _clean(synced)
    records = [json.loads(line) for line in (runs / "t" / "records.jsonl").read_text().splitlines()]
    client = MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")
    experiment = client.get_experiment_by_name("nulls-throughput")
    trials = [run for run in client.search_runs([experiment.experiment_id], max_results=100)
              if run.data.tags.get("infertune.kind") == "trial"]
    assert len(trials) == len(records)
    for run in trials:
        record = next(r for r in records if r["trial"] == int(run.data.tags["infertune.trial"]))
        known = {name for name, value in record["metrics"].items() if value is not None}
        assert set(run.data.metrics) == known | {"objective"}  # a null is left out, never logged as 0
    assert len([run for run in trials if run.data.tags.get("deployable") == "true"]) == 1


def _record(trial: int, **metrics: float | None) -> Record:
    full = {**dict.fromkeys(OPTIONAL), "tokens_per_s": None, **metrics}
    return Record(run="r", task="t", space="s@1", trial=trial, agent="a", config={"batch_size": trial}, status="ok",
                  error=None, metrics=full, objective=1.0, feasible=True, cached=False, fingerprint={},
                  started_at="", duration_s=1.0)


def test_pareto_front_weighs_only_what_every_candidate_has():
    from tuner.results.pareto import front_metrics, pareto_front

    fast = _record(1, tokens_per_s=100.0, latency_p95_s=2.0, top1_agree=0.9, peak_mem_mb=None)
    small = _record(2, tokens_per_s=50.0, latency_p95_s=1.0, top1_agree=0.99, peak_mem_mb=500.0)
    slow = _record(3, tokens_per_s=40.0, latency_p95_s=3.0, top1_agree=0.8, peak_mem_mb=400.0)
    unknown = _record(4, tokens_per_s=None, latency_p95_s=0.1, top1_agree=1.0, peak_mem_mb=10.0)
    records = [fast, small, slow, unknown]
    assert [name for name, _ in front_metrics(records)] == ["tokens_per_s", "latency_p95_s", "top1_agree"]
    assert [record.trial for record in pareto_front(records)] == [1, 2]  # slow is beaten on all three
    assert [record.trial for record in pareto_front([small, slow])] == [2, 3]  # memory counts when all have it
    assert pareto_front([unknown]) == []  # no throughput, no place on the front


def test_pareto_plot_with_nothing_to_place(tmp_path):
    from tuner.results.plots import curves_plot, pareto_plot

    records = [_record(1, tokens_per_s=10.0), _record(2, tokens_per_s=None)]
    assert pareto_plot(records, records[:1], tmp_path / "p.png", "nulls").stat().st_size > 10_000
    curves = {"random": [[math.nan, math.nan], [math.nan, 3.0]]}
    assert curves_plot(curves, tmp_path / "c.png", "t", "y", reference=math.nan).stat().st_size > 10_000


def test_observation_flags_missing_metrics(tmp_path):
    from tuner.env.observation import OUTCOME, STATUSES, outcome_features
    from tuner.env.tuning_env import TuningEnv

    assert outcome_features({**dict.fromkeys(OUTCOME), "top1_agree": float("nan")}) == [0.0] * 8
    measured = outcome_features({"tokens_per_s": 100.0, "latency_p95_s": 1.0, "top1_agree": 0.0, "peak_mem_mb": 800.0})
    assert measured[4:] == [1.0] * 4 and measured[2] == 0.0  # a real 0 agreement differs from a missing one
    env = TuningEnv(str(null_recording(tmp_path, "optional")), runs_dir=str(tmp_path / "runs"), budget=3)
    try:
        env.reset(seed=0)
        config = {"batch_size": 16, "dtype": "bfloat16", "quantization": "none", "attn_implementation": "sdpa",
                  "cache_implementation": "dynamic", "compile": False, "shard_count": 1}
        observation, reward, *_ = env.step(env.codec.encode(config))
        assert env.session.records[-1].metrics["peak_mem_mb"] is None and reward > 0
        assert env.observation_space.contains(observation) and np.isfinite(observation).all()
        tail = 3 + len(STATUSES)  # the outcome block (4 values, 4 flags) comes before status and scores
        flags = observation[-(tail + 4):-tail]
        assert list(flags) == [1.0, 0.0, 0.0, 0.0]  # throughput measured; p95, top1, memory missing
    finally:
        env.close()


def test_report_lines_show_na():
    from tuner.results.tables import outcome_text, pareto_table, records_table, trial_line

    record = _record(1, tokens_per_s=12.5)
    assert outcome_text(record) == "ok 12.5 tok/s p95 n/a s top1 n/a mem n/a MB"
    assert trial_line(1, 8, _record(2), record).endswith("| ok n/a tok/s p95 n/a s top1 n/a mem n/a MB (1.0 s) | "
                                                         "best 12.5 tok/s (trial 1)")
    row = records_table([record], ["batch_size"]).splitlines()[2].split()
    assert row[:4] == ["1", "1", "ok", "12.5"] and row[4:-1] == ["n/a"] * 10
    assert pareto_table([record], []).splitlines()[2].split() == ["1", "12.5", "n/a", "n/a", "n/a"]
