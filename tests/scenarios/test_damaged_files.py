"""Damaged files never stop a run: a line that is not a record is skipped with a warning naming the file and
line, a cache entry of the wrong shape is a miss, and an unreachable MLflow store costs one warning, not minutes."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPLAY, ROOT, measure_ok
from tuner.evaluation.evaluator import Evaluator
from tuner.measure.backends.replay import read_recording
from tuner.measure.cache import MeasurementCache
from tuner.records import read_records

RECORDING = ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl"


def infertune(*args: str, runs: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300, env={**os.environ, **(env or {})})


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("infertune: warning:")]


def test_lines_that_are_not_records_are_skipped_by_every_command(tmp_path):
    runs = tmp_path / "runs"
    first = infertune("tune", str(REPLAY), "--agent", "random", "--budget", "3", "--run", "r", "--no-mlflow",
                      runs=runs)
    assert first.returncode == 0, first.stderr
    records = runs / "r" / "records.jsonl"
    good = records.read_text().splitlines()
    # valid JSON, not a record: each once broke resume, show, sync and export --best for every run beside it
    not_records = ["42", json.dumps(json.loads(good[1]) | {"status": 5}), "null",
                   json.dumps(json.loads(good[0]) | {"metrics": {"tokens_per_s": "fast"}})]
    records.write_text("\n".join([*good, *not_records]) + "\n")
    expected = [f"infertune: warning: {records}:4: 42 is not a record (a JSON object); line skipped",
                f"infertune: warning: {records}:5: status is 5, not text; line skipped",
                f"infertune: warning: {records}:6: null is not a record (a JSON object); line skipped",
                f'infertune: warning: {records}:7: metrics.tokens_per_s is "fast", not a number or null; '
                "line skipped"]
    for command in (["show", "r"], ["export", "--best", str(REPLAY), "--to", "hf"], ["sync", "r"],
                    ["tune", str(REPLAY), "--resume", "r", "--budget", "5", "--no-mlflow"]):
        result = infertune(*command, runs=runs)
        assert result.returncode == 0, (command, result.stderr)
        assert "Traceback" not in result.stderr
        assert [line for line in _warnings(result.stderr) if "line skipped" in line] == expected, command
    kept = read_records(records)
    assert [record.trial for record in kept] == [0, 1, 2, 3, 4]  # the resume went on from the 3 good records
    assert records.read_text().splitlines()[:3] == good  # nothing written before is touched


def test_recording_lines_of_the_wrong_shape_are_skipped(tmp_path, capsys):
    rows = RECORDING.read_text().splitlines()
    text_metric, no_metrics, text_error, list_fingerprint = (json.loads(rows[index]) for index in range(5, 9))
    text_metric["metrics"]["tokens_per_s"] = "fast"
    no_metrics["metrics"] = 5
    text_error["error"] = "boom"
    list_fingerprint["fingerprint"] = [1]
    recording = tmp_path / "recording.jsonl"
    damaged = [json.dumps(row) for row in (text_metric, no_metrics, text_error, list_fingerprint)]
    recording.write_text("\n".join([*rows[:5], *damaged, *rows[9:]]) + "\n")
    assert len(read_recording(recording)) == len(rows) - 4
    assert capsys.readouterr().err.splitlines() == [
        f'infertune: warning: {recording}:6: metrics.tokens_per_s is "fast", not a number or null; line skipped',
        f"infertune: warning: {recording}:7: metrics is 5, not an object or null; line skipped",
        f'infertune: warning: {recording}:8: error is "boom", not an object or null; line skipped',
        f"infertune: warning: {recording}:9: fingerprint is [1], not an object; line skipped"]


def test_a_cache_entry_that_is_not_utf8_is_a_miss(tmp_path):
    (tmp_path / "k.json").write_bytes(b'{"run": "caf\xe9"}')
    assert MeasurementCache(tmp_path).get("k") is None


def test_a_cache_entry_of_the_wrong_shape_is_a_miss_measured_again(tmp_path, tiny_task, capsys):
    cache = tmp_path / "cache"
    with Evaluator(tiny_task, tmp_path / "first", cache_dir=cache) as evaluator:
        measure_ok(evaluator, {"batch_size": 2})
    (entry,) = cache.glob("*.json")
    entry.write_text("{}")  # valid JSON, not a record: it once aborted every run sharing the cache
    with Evaluator(tiny_task, tmp_path / "second", cache_dir=cache) as evaluator:
        record = measure_ok(evaluator, {"batch_size": 2})
    assert record.cached is False and record.metrics["tokens_per_s"] > 0
    assert f"infertune: warning: {entry}:1: run is missing; a miss, measured again" in capsys.readouterr().err
    assert json.loads(entry.read_text())["config"] == record.config  # overwritten with the new measurement


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_an_unreachable_tracking_database_costs_one_warning_and_seconds(tmp_path):
    runs = tmp_path / "runs"
    uri = f"postgresql://tuner:pw-SECRET-42@127.0.0.1:{_closed_port()}/mlflow"
    started = time.monotonic()
    result = infertune("tune", str(REPLAY), "--agent", "random", "--budget", "4", "--run", "d", runs=runs,
                       env={"MLFLOW_TRACKING_URI": uri})
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    assert len((runs / "d" / "records.jsonl").read_text().splitlines()) == 4
    warnings = _warnings(result.stderr)
    assert len(warnings) == 2, result.stderr
    assert warnings[0].startswith("infertune: warning: MLflow upload failed (connect): (psycopg.OperationalError)")
    assert warnings[1] == "infertune: warning: 5 MLflow upload(s) failed; infertune sync d uploads what is missing"
    assert "pw-SECRET-42" not in result.stdout + result.stderr
    assert elapsed < 60  # MLflow alone retries a database for ~102 s


def test_export_of_a_run_id_with_the_store_down_says_so(tmp_path):
    uri = f"postgresql://tuner:pw-SECRET-42@127.0.0.1:{_closed_port()}/mlflow"
    result = infertune("export", "0123abcd", "--to", "vllm", runs=tmp_path / "runs", env={"MLFLOW_TRACKING_URI": uri})
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("infertune: error: RUN_ID: cannot look the run id up in the MLflow store: "
                           "(psycopg.OperationalError) connection failed") and line.endswith("(got '0123abcd')")
    assert "pw-SECRET-42" not in result.stderr


def test_export_of_an_unknown_run_id_creates_no_store(tmp_path):
    runs = tmp_path / "runs"
    result = infertune("export", "nope", "--to", "vllm", runs=runs)
    assert result.returncode == 2
    assert result.stderr.splitlines() == [f"infertune: error: {runs}: RUN_ID: neither a run folder nor an MLflow "
                                          "run id (got 'nope')"]
    assert not (runs / "mlflow.db").exists()
