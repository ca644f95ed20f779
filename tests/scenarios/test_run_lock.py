"""A run is one process's at a time, a resumed run keeps its task, and --budget on --resume is the run's total."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import REPLAY, ROOT
from tuner.evaluation.resume import spent_budget
from tuner.records import read_records

SPACE = ROOT / "search_spaces" / "smollm2-cpu-reduced.yaml"
RECORDING = REPLAY.parent / "recordings" / "smollm2-cpu.jsonl"


def _command(runs: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args]


def _infertune(runs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(_command(runs, *args), capture_output=True, text=True, cwd=ROOT, timeout=300)


def _start_slow(runs: Path, *args: str) -> subprocess.Popen:
    """A tune that replays each measurement in 1 s, so that it still holds its run while the test goes on."""
    slow = {**os.environ, "INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_REPLAY_DELAY_S": "1"}
    return subprocess.Popen(_command(runs, *args), cwd=ROOT, env=slow, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def _wait_for_records(path: Path, count: int, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + 120
    while len(read_records(path)) < count:
        assert process.poll() is None, process.stderr.read()[-2000:] if process.stderr else process.returncode
        assert time.monotonic() < deadline, f"no {count} records in {path} after 120 s"
        time.sleep(0.1)


def _assert_consistent(run_dir: Path, measurements: int) -> None:
    """records.jsonl and summary.json agree: every trial number once, every config measured once, the same counts."""
    records = read_records(run_dir / "records.jsonl")
    trials = [record.trial for record in records]
    assert len(trials) == len(set(trials)), trials
    measured = [json.dumps(record.config, sort_keys=True) for record in records if spent_budget(record)]
    assert len(measured) == len(set(measured)) == measurements, measured
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["trials"] == len(records) and summary["measurements"] == measurements, summary


def _one_line(result: subprocess.CompletedProcess) -> str:
    lines = (result.stderr or result.stdout).strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return lines[0]


def test_a_second_process_on_a_running_run_is_refused_with_the_holders_pid(tmp_path):
    holder = _start_slow(tmp_path, "tune", str(REPLAY), "--agent", "optuna", "--budget", "12", "--run", "dual",
                         "--no-mlflow")
    _wait_for_records(tmp_path / "dual" / "records.jsonl", 1, holder)
    lock = (tmp_path / "dual" / "run.lock").resolve()
    others = [("--resume", ["tune", str(REPLAY), "--resume", "dual", "--no-mlflow"]),
              ("--run", ["tune", str(REPLAY), "--run", "dual", "--budget", "3", "--no-mlflow"]),
              ("--run", ["measure", str(REPLAY), "--run", "dual", "--set", "batch_size=1", "--no-mlflow"])]
    for field, args in others:
        result = _infertune(tmp_path, *args)
        assert result.returncode == 2, (args, result.stdout[-2000:], result.stderr[-2000:])
        assert _one_line(result) == (f"infertune: error: {field}: the run is in use by process {holder.pid} (it holds "
                                     f"{lock}); wait for it to end or stop it (got 'dual')")
    assert holder.poll() is None  # the refusals all came while the first process held the run
    assert holder.wait(timeout=300) == 0, holder.stderr.read()[-2000:]
    _assert_consistent(tmp_path / "dual", 12)


def test_after_kill_9_of_the_holder_a_new_process_takes_the_run(tmp_path):
    holder = _start_slow(tmp_path, "tune", str(REPLAY), "--agent", "random", "--budget", "6", "--run", "k",
                         "--no-mlflow")
    _wait_for_records(tmp_path / "k" / "records.jsonl", 2, holder)
    os.kill(holder.pid, signal.SIGKILL)
    holder.wait(timeout=60)
    assert (tmp_path / "k" / "run.lock").read_text().strip() == str(holder.pid)  # the file stays; the lock does not
    resumed = _infertune(tmp_path, "tune", str(REPLAY), "--resume", "k", "--no-mlflow")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming k (" in resumed.stdout
    _assert_consistent(tmp_path / "k", 6)


def test_resume_refuses_a_task_whose_files_changed(tmp_path):
    space, recording, task = tmp_path / "space.yaml", tmp_path / "rec.jsonl", tmp_path / "task.yaml"
    originals = {space: SPACE.read_text(), recording: RECORDING.read_text(),
                 task: REPLAY.read_text().replace("recording: recordings/smollm2-cpu.jsonl", f"recording: {recording}")
                 .replace("search_space: smollm2-cpu-reduced", f"search_space: {space}")}
    for path, text in originals.items():
        path.write_text(text)
    started = _infertune(tmp_path, "tune", str(task), "--agent", "random", "--budget", "3", "--run", "r", "--no-mlflow")
    assert started.returncode == 0, started.stderr[-2000:]
    records = (tmp_path / "r" / "records.jsonl").read_bytes()
    changes = [(space, originals[space].replace("choices: [1, 4, 8, 16]", "choices: [1, 4]"), "search space"),
               (recording, "".join(originals[recording].splitlines(keepends=True)[:-1]), "recording"),
               (task, originals[task].replace("max: 10.0", "max: 5.0"), "task file")]
    for path, text, what in changes:
        path.write_text(text)
        refused = _infertune(tmp_path, "tune", str(task), "--resume", "r", "--budget", "4", "--no-mlflow")
        assert refused.returncode == 2, (what, refused.stdout[-2000:], refused.stderr[-2000:])
        assert _one_line(refused) == (f"infertune: error: --resume: the task's files changed since the run started "
                                      f"({what} {path}); its records belong to the old task: start a new run (got 'r')")
        path.write_text(originals[path])
    assert (tmp_path / "r" / "records.jsonl").read_bytes() == records
    same = _infertune(tmp_path, "tune", str(task), "--resume", "r", "--budget", "4", "--no-mlflow")
    assert same.returncode == 0, same.stderr[-2000:]
    _assert_consistent(tmp_path / "r", 4)


def _progress(stdout: str) -> list[tuple[int, int]]:
    return [(int(spent), int(budget)) for spent, budget in re.findall(r"^\[\s*(\d+)/(\d+)\]", stdout, re.MULTILINE)]


def test_budget_on_resume_is_the_runs_total(tmp_path):
    first = _infertune(tmp_path, "tune", str(REPLAY), "--agent", "optuna", "--budget", "8", "--run", "b", "--no-mlflow")
    assert first.returncode == 0, first.stderr[-2000:]
    run = tmp_path / "b"
    files = {name: (run / name).read_bytes() for name in ("records.jsonl", "summary.json", "run.json")}
    for extra, total in ((["--budget", "2"], 2), ([], 8)):
        spent = _infertune(tmp_path, "tune", str(REPLAY), "--resume", "b", *extra, "--no-mlflow")
        assert spent.returncode == 0 and not spent.stderr.strip(), spent.stderr[-2000:]
        assert spent.stdout.strip().splitlines() == [
            f"b: already spent 8 measurements of a total budget of {total} (on --resume, --budget is the run's total, "
            "earlier measurements included): nothing to measure; a larger --budget goes on"]
        assert {name: (run / name).read_bytes() for name in files} == files  # nothing measured, nothing written
    more = _infertune(tmp_path, "tune", str(REPLAY), "--resume", "b", "--budget", "10", "--no-mlflow")
    assert more.returncode == 0, more.stderr[-2000:]
    progress = _progress(more.stdout)
    assert progress and {budget for _, budget in progress} == {10} and max(spent for spent, _ in progress) == 10
    assert all(spent <= 10 for spent, _ in progress), progress
    _assert_consistent(run, 10)
    assert json.loads((run / "run.json").read_text())["budget"] == 10
    # killed after its last measurement, before its summary: resuming finishes it without measuring
    (run / "summary.json").unlink()
    records = (run / "records.jsonl").read_bytes()
    finished = _infertune(tmp_path, "tune", str(REPLAY), "--resume", "b", "--no-mlflow")
    assert finished.returncode == 0, finished.stderr[-2000:]
    lines = [line for line in finished.stdout.splitlines() if line.startswith("[")]
    assert lines and all(line.endswith("[from the interrupted run]") for line in lines), lines
    assert (run / "records.jsonl").read_bytes() == records
    _assert_consistent(run, 10)
