"""The replay backend on the shipped SmolLM2 landscape, and on a foreign recording with its own space."""

from __future__ import annotations

import json

import pytest

from tests.conftest import ROOT
from tuner.errors import ConfigError
from tuner.evaluator import Evaluator
from tuner.measure.backends.replay import read_recording
from tuner.task import load_task

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
        assert evaluator.worker.pid is None and evaluator.measurements == 1


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
