"""The shipped serving landscape: every serving-cpu config measured on a real server; tuned and exported by replay."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from tests.helpers import ROOT
from tuner.evaluation.session import best_record
from tuner.measure.backends.replay import read_recording
from tuner.records import read_records
from tuner.space.loader import load_space, shipped_space
from tuner.task import load_task

TASK = ROOT / "envs" / "smollm2-cpu-serving.yaml"
REPLAY = ROOT / "envs" / "smollm2-cpu-serving-replay.yaml"


def _key(config: dict) -> str:
    return json.dumps(config, sort_keys=True)


def test_every_config_of_the_space_was_measured_once_on_a_real_server_under_the_tasks_load():
    task = load_task(TASK)
    rows = read_recording(load_task(REPLAY).recording)
    grid = {_key(config) for config in load_space(shipped_space("serving-cpu")).grid()}
    assert sorted(_key(row["config"]) for row in rows) == sorted(grid)  # each config once, none foreign
    assert {row["task"] for row in rows} == {task.id}
    for row in rows:
        assert row["fingerprint"]["engine"] == "transformers-serve" and row["fingerprint"]["guidellm"]
        assert row["info"]["load"] == task.workload.load and row["info"]["slo"] == task.workload.slo
        assert row["status"] in ("ok", "unstable")  # every config served its requests; none crashed
        assert row["metrics"]["repeats"] == task.workload.repeats and row["metrics"]["server_start_s"] > 0
    feasible = [row for row in rows if row["feasible"]]
    assert len(feasible) >= 12
    # one sequence in flight cannot keep up with 1 req/s here: its queue grows and its TTFT runs past the SLO
    single = [row for row in rows if row["config"]["max_num_seqs"] == 1]
    assert sum(row["metrics"]["ttft_p95_s"] > task.workload.slo["ttft_p95_s"] for row in single) >= len(single) - 1


def test_a_budget_12_search_on_the_replayed_landscape_exports_the_measured_serving_flags(tmp_path: Path):
    cli = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs")]
    tuned = subprocess.run(cli + ["tune", str(REPLAY), "--agent", "optuna", "--budget", "12", "--seed", "3",
                                  "--run", "serve", "--no-mlflow"], capture_output=True, text=True, timeout=300)
    assert tuned.returncode == 0, tuned.stderr
    records = read_records(tmp_path / "runs" / "serve" / "records.jsonl")
    assert len(records) == 12 and not any(record.cached for record in records)
    best = best_record(records)
    deployable = [record for record in records if record.status == "ok" and record.feasible]
    assert best.metrics["goodput_rps"] == max(record.metrics["goodput_rps"] for record in deployable)
    exported = subprocess.run(cli + ["export", "serve", "--to", "vllm", "--out", str(tmp_path / "out")],
                              capture_output=True, text=True, timeout=120)
    assert exported.returncode == 0, exported.stderr
    exported_file = next((tmp_path / "out").rglob("vllm.yaml"))
    text, options = exported_file.read_text(), yaml.safe_load(exported_file.read_text())
    assert options["max-num-seqs"] == best.config["max_num_seqs"]
    assert options["max-num-batched-tokens"] == best.config["max_batch_tokens"]
    assert f"measured under load: goodput_rps {best.metrics['goodput_rps']:.2f}" in text
    assert "load measured at: process poisson, rate 1.0, num_requests 24, max_tokens 32" in text
    assert "SLOs: ttft_p95_s <= 5.0, itl_p95_s <= 0.5" in text


def test_ppo_on_a_serving_space_learns_from_scratch_with_one_warning_instead_of_the_static_policy(tmp_path: Path):
    cli = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs")]
    tuned = subprocess.run(cli + ["compare", str(REPLAY), "--agents", "ppo", "--budget", "4", "--seeds", "2",
                                  "--no-mlflow"], capture_output=True, text=True, timeout=600)
    assert tuned.returncode == 0, tuned.stderr[-2000:]
    assert "Traceback" not in tuned.stderr
    warning = ("infertune: warning: the shipped policy knows the knobs batch_size, dtype, quantization, "
               "attn_implementation, cache_implementation, compile, shard_count, not max_num_seqs, max_batch_tokens, "
               "scheduler; ppo learns on this task from scratch (--policy none)")
    assert tuned.stderr.count(warning) == 1  # once, though compare builds an agent per seed
    runs = sorted((tmp_path / "runs").rglob("records.jsonl"))
    assert len(runs) == 2 and all(len(read_records(run)) == 4 for run in runs)
