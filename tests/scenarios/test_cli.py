"""The command line as a user runs it: one-line errors with exit 2, JSON records, a killed worker."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT

TINY = str(ROOT / "envs" / "tiny-cpu.yaml")


def infertune(*args: str, runs: Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, **kwargs)


def _bad_task(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("make_args", "fragment"), [
    (lambda tmp: [_bad_task(tmp, "id: x\nmodel: {tiny: {}\n")], "malformed YAML"),
    (lambda tmp: [TINY, "--set", "turbo=1"], "--set: turbo: unknown knob"),
    (lambda tmp: [TINY, "--set", "batch_size=3"], "--set: batch_size: value not allowed"),
    (lambda tmp: [TINY, "--set", "dtype"], "--set: expected knob=value"),
    (lambda tmp: [_bad_task(tmp, "model: {gguf: missing.gguf}\nworkload: {prompts: [hi]}\n")],
     "model.gguf: GGUF file not found (got 'missing.gguf')"),
    (lambda tmp: [str(tmp / "absent.yaml")], "absent.yaml: file not found"),
])
def test_user_errors_are_one_line_exit_2(tmp_path, make_args, fragment):
    result = infertune("measure", *make_args(tmp_path), runs=tmp_path / "runs")
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("infertune: error: ") and fragment in lines[0]
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_usage_error_is_one_line(tmp_path):
    result = infertune("measure", runs=tmp_path / "runs")
    assert result.returncode == 2 and len(result.stderr.strip().splitlines()) == 1


def test_measure_json_and_table(tmp_path):
    runs = tmp_path / "runs"
    result = infertune("measure", TINY, "--set", "batch_size=1,4", "--set", "dtype=bfloat16", "--json",
                       "--no-mlflow", runs=runs)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [record["config"]["batch_size"] for record in records] == [1, 4]
    assert all(record["config"]["dtype"] == "bfloat16" and record["status"] in ("ok", "unstable")
               for record in records)
    assert "[1/2] measuring batch_size=1 dtype=bfloat16" in result.stderr
    files = list(runs.glob("measure-tiny-cpu-*/records.jsonl"))
    assert len(files) == 1 and [json.loads(line) for line in files[0].read_text().splitlines()] == records

    table = infertune("measure", TINY, "--set", "batch_size=4", "--set", "dtype=bfloat16", "--no-mlflow", runs=runs)
    assert table.returncode == 0
    header, _rule, row = table.stdout.splitlines()[:3]
    assert header.split()[:3] == ["trial", "batch_size", "dtype"] and "tok/s" in header and "top1" in header
    # a stable figure is cached and shown as such; an unstable one (a busy machine) is never cached
    assert ("(cached)" in row) is (records[1]["status"] == "ok")


def test_spaces_show_and_envs_list(tmp_path):
    shown = infertune("spaces", "show", "hf-transformers", runs=tmp_path)
    assert shown.returncode == 0 and "compile requires cache_implementation == static" in shown.stdout
    listed = infertune("envs", "list", runs=tmp_path)
    assert listed.returncode == 0
    assert "infertune/tiny-cpu-v0" in listed.stdout and "infertune/smollm2-cpu-v0" in listed.stdout


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    if int(stat.read().rsplit(")", 1)[1].split()[1]) == pid:
                        found.append(int(entry))
            except (OSError, ValueError, IndexError):
                continue
    return found


def test_killing_the_worker_mid_measurement_gives_crash(tmp_path):
    runs = tmp_path / "runs"
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "measure", TINY, "--json", "--set",
               "cache_implementation=static", "--set", "compile=true"]  # compiling keeps the worker busy for seconds
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 60
    workers: list[int] = []
    while not workers and time.monotonic() < deadline:
        time.sleep(0.5)
        workers = _children(process.pid)
    assert workers, "the worker never started"
    time.sleep(4)  # loaded and measuring
    os.kill(workers[0], signal.SIGKILL)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 1, stderr
    record = json.loads(stdout)
    assert record["status"] == "crash" and record["error"]["exit_code"] == -signal.SIGKILL
    assert "killed by SIGKILL" in record["error"]["message"]
    assert not _children(process.pid)
