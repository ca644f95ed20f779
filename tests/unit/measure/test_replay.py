"""The replay backend on the shipped SmolLM2 landscape, and on a foreign recording with its own space."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import ROOT
from tuner.evaluation.evaluator import Evaluator
from tuner.measure.backends.replay import read_recording
from tuner.task import load_task
from tuner.util.errors import ConfigError

RECORDING = ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl"


def test_shipped_landscape_is_a_real_recording():
    rows = read_recording(RECORDING)
    measured = [row for row in rows if row["status"] in ("ok", "unstable")]
    assert len(measured) >= 48
    assert {row["task"] for row in rows} == {"smollm2-cpu"}
    assert all(row["fingerprint"]["device"] == "cpu" and row["metrics"]["repeats"] >= 3 for row in measured)
    speeds = sorted(row["metrics"]["tokens_per_s"] for row in measured)
    assert speeds[-1] > 5 * speeds[0]  # a landscape worth searching


def test_replay_returns_recorded_metrics_without_inference(tmp_path, replay_task):
    rows = {json.dumps(row["config"], sort_keys=True): row for row in read_recording(RECORDING)
            if row["status"] == "ok"}
    config = json.loads(next(iter(rows)))
    with Evaluator(replay_task, tmp_path / "run") as evaluator:
        record = evaluator.evaluate(config)
        assert record.status == "ok" and record.metrics == rows[json.dumps(config, sort_keys=True)]["metrics"]
        assert record.fingerprint == rows[json.dumps(config, sort_keys=True)]["fingerprint"]
        assert evaluator.measurer.pid is None and evaluator.measurements == 1


def test_config_missing_from_recording_is_infeasible(tmp_path):
    recording = tmp_path / "recording.jsonl"
    rows = [row for row in read_recording(RECORDING) if row["config"]["batch_size"] != 16]
    recording.write_text("".join(json.dumps(row) + "\n" for row in rows))
    task_file = tmp_path / "task.yaml"
    task_file.write_text(f"id: partial\nbackend: replay\nrecording: recording.jsonl\n"
                         f"search_space: {ROOT / 'search_spaces' / 'smollm2-cpu-reduced.yaml'}\n")
    task = load_task(task_file)
    assert task.recording == recording.resolve()
    with Evaluator(task, tmp_path / "run") as evaluator:
        record = evaluator.evaluate({"batch_size": 16, "dtype": "bfloat16"})
    assert record.status == "infeasible" and record.error["message"] == "not in recording"


def test_missing_recording_is_a_user_error(tmp_path):
    task_file = tmp_path / "task.yaml"
    task_file.write_text("backend: replay\nrecording: nowhere.jsonl\n")
    with pytest.raises(ConfigError, match=r"recording: recording not found \(got 'nowhere.jsonl'\)"):
        load_task(task_file)


def test_foreign_recording_with_its_own_space_and_task(tmp_path):
    """A recording from another machine and tool version: two knobs, a GPU fingerprint, fields we lack."""
    rows = [row for row in read_recording(RECORDING) if row["status"] == "ok"
            and row["config"]["quantization"] == "none" and row["config"]["attn_implementation"] == "sdpa"
            and row["config"]["cache_implementation"] == "dynamic"]
    foreign = []
    for trial, row in enumerate(rows):
        foreign.append({"schema": 1, "run": "h100-sweep", "task": "their-task", "space": "theirs@3", "trial": trial,
                        "agent": "grid", "config": {k: row["config"][k] for k in ("batch_size", "dtype")},
                        "status": "ok", "error": None, "metrics": {**row["metrics"], "energy_j": 1.0},
                        "objective": 0.0, "feasible": True, "cached": False,
                        "fingerprint": {"device": "cuda", "device_name": "NVIDIA H100 80GB HBM3"},
                        "started_at": "2026-11-01T00:00:00Z", "duration_s": 1.0, "operator": "someone"})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "sweep.jsonl").write_text("".join(json.dumps(row) + "\n" for row in foreign))
    (tmp_path / "their-space.yaml").write_text(
        "id: theirs\nversion: 3\nknobs:\n  batch_size: {type: int, choices: [1, 4, 8, 16, 32]}\n"
        "  dtype: {type: categorical, choices: [float32, bfloat16]}\n")
    (tmp_path / "their-task.yaml").write_text(
        "id: their-task\nbackend: replay\nrecording: data/sweep.jsonl\nsearch_space: their-space.yaml\nbudget: 6\n")
    result = subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs"), "tune",
                             str(tmp_path / "their-task.yaml"), "--agent", "optuna", "--run", "t"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads((tmp_path / "runs" / "t" / "summary.json").read_text())
    assert summary["measurements"] == 6 and summary["fingerprint"]["device_name"] == "NVIDIA H100 80GB HBM3"
    best = max((row for row in foreign), key=lambda row: row["metrics"]["tokens_per_s"])
    records = [json.loads(line) for line in (tmp_path / "runs" / "t" / "records.jsonl").read_text().splitlines()]
    assert all(set(record["config"]) == {"batch_size", "dtype"} for record in records)
    measured = [record for record in records if record["status"] == "ok"]
    assert all(record["metrics"]["energy_j"] == 1.0 for record in measured)  # their extra metric is kept
    assert summary["best"]["metrics"]["tokens_per_s"] <= best["metrics"]["tokens_per_s"]
    assert summary["best"]["config"] in [row["config"] for row in foreign]
