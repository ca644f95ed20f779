"""SIGTERM ends a run as Ctrl-C does: one line, the measuring worker's process group killed at once, records kept."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, tiny_without_compile

FIRST_RECORD_S = 300  # the worker's start and one tiny measurement, on a loaded 2-core runner
GONE_WITHIN_S = 3.0


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux /proc)."""
    with contextlib.suppress(OSError):
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    return []


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes in process group ``pgid``."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            state, _, group = stat.read_text().rsplit(")", 1)[1].split()[:3]
            if int(group) == pgid and state != "Z":
                members.append(int(stat.parent.name))
    return members


def _wait_for(condition, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def _sigterm_mid_measurement(process: subprocess.Popen, first_record: Path) -> tuple[int, str]:
    """Once ``process`` has written a record and measures the next config, SIGTERM it; the worker's process group
    must be gone within GONE_WITHIN_S, and so must ``process``. Returns (its exit code, its stderr)."""
    worker = None
    try:
        assert _wait_for(lambda: first_record.is_file() and first_record.read_text().count("\n") >= 1,
                         FIRST_RECORD_S), process.stderr.read() if process.poll() is not None else "no record in time"
        assert _wait_for(lambda: bool(_children(process.pid)), 10), "no measuring worker"
        worker = _children(process.pid)[0]
        assert b"tuner.measure.worker" in Path(f"/proc/{worker}/cmdline").read_bytes()
        assert os.getpgid(worker) == worker  # the worker leads its own group: its children die with it
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        assert _wait_for(lambda: not _group_members(worker), GONE_WITHIN_S), _group_members(worker)
        _, stderr = process.communicate(timeout=GONE_WITHIN_S)
        assert time.monotonic() - signalled < GONE_WITHIN_S
    finally:
        if process.poll() is None:
            process.kill()
        if worker is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker, signal.SIGKILL)
    return process.returncode, stderr


def test_sigterm_kills_the_worker_at_once_and_keeps_the_records(tmp_path):
    runs = tmp_path / "runs"
    records = runs / "t" / "records.jsonl"
    cli = subprocess.Popen([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune",
                            str(tiny_without_compile(tmp_path)), "--agent", "random", "--budget", "12", "--run", "t"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, stderr = _sigterm_mid_measurement(cli, records)  # SIGTERM lands mid-measurement
    assert code == 130, stderr
    assert stderr.splitlines() == [f"infertune: interrupted; every finished measurement is in records.jsonl; resume "
                                   f"with: infertune tune {tmp_path / 'tiny.yaml'} --resume t"], stderr
    lines = records.read_text().splitlines()
    assert lines and records.read_text().endswith("\n")
    assert all(json.loads(line)["run"] == "t" for line in lines)


FINALIZER_FAILS_AFTER_SIGTERM = """
import gc, os, signal, sys
from tuner import cli
from tuner.commands import envs

class CutOffMidUpdate:  # like a SQLAlchemy state whose identity map the interrupt left half-updated
    def __del__(self):
        raise AssertionError("key is not None")

def handler(args):
    cycle = CutOffMidUpdate()
    cycle.self = cycle
    del cycle
    os.kill(os.getpid(), signal.SIGTERM)
    while True:
        pass

envs.cmd_envs_list = handler  # the subcommand's module binds its handler when cli.main builds the parser
code = cli.main(["envs", "list"])
gc.collect()
sys.exit(code)
"""


def test_finalizers_failing_after_sigterm_print_nothing():
    done = subprocess.run([sys.executable, "-c", FINALIZER_FAILS_AFTER_SIGTERM], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 130
    assert done.stderr.splitlines() == ["infertune: interrupted; every finished measurement is in records.jsonl"]


def test_sigterm_stops_the_landscape_recorder_and_its_worker(tmp_path):
    task = tiny_without_compile(tmp_path)
    landscape = task.with_suffix(".jsonl")
    # --max-foreign-cpu none: the other test process must not hold the first record back
    recorder = subprocess.Popen([sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs"), "record",
                                 str(task), "--max-foreign-cpu", "none"], cwd=ROOT,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    code, stderr = _sigterm_mid_measurement(recorder, landscape)
    assert code == 130, stderr
    assert stderr.splitlines() == ["interrupted; every finished config is in its landscape's .jsonl (run again to "
                                   "go on)"]
    assert all(json.loads(line)["config"] for line in landscape.read_text().splitlines())


def _descendants(pid: int) -> list[int]:
    found, frontier = [], [pid]
    while frontier:
        children = _children(frontier.pop())
        found += children
        frontier += children
    return found


def _alive(pid: int) -> bool:
    with contextlib.suppress(OSError, IndexError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def test_sigterm_stops_parallel_ppo_envs_and_their_workers(tmp_path):
    runs = tmp_path / "runs"
    cli = subprocess.Popen([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune",
                            str(tiny_without_compile(tmp_path)), "--agent", "ppo", "--policy", "none", "--envs", "2",
                            "--budget", "12", "--run", "p", "--no-mlflow"],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    started = []
    try:
        first = runs / "p" / "env0" / "records.jsonl"
        assert _wait_for(lambda: first.is_file() and first.read_text().count("\n") >= 1, FIRST_RECORD_S), \
            cli.stderr.read() if cli.poll() is not None else "no record in time"
        started = _descendants(cli.pid)
        workers = [pid for pid in started if b"tuner.measure.worker" in Path(f"/proc/{pid}/cmdline").read_bytes()]
        assert len(workers) == 2, started  # one measuring worker per env process
        cli.send_signal(signal.SIGTERM)
        _, stderr = cli.communicate(timeout=30)
        assert _wait_for(lambda: not any(_alive(pid) for pid in started), 10), [p for p in started if _alive(p)]
    finally:
        if cli.poll() is None:
            cli.kill()
        for pid in started:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert cli.returncode == 130, stderr
    assert stderr.splitlines()[-1].startswith("infertune: interrupted; every finished measurement is in"), stderr
    assert "Traceback" not in stderr


def test_a_second_signal_while_the_first_unwinds_changes_nothing():
    done = subprocess.run([sys.executable, "-c", "import signal\nfrom tuner.measure import interrupts\n"
                           "try:\n    interrupts._interrupted(signal.SIGTERM, None)\nexcept KeyboardInterrupt:\n"
                           "    interrupts._interrupted(signal.SIGTERM, None)  # pkill twice: no second raise\n"
                           "    print('unwound once')\n"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "unwound once\n", done.stderr


def test_no_worker_starts_after_an_interrupt_even_one_a_library_swallowed():
    from tuner.measure import launcher

    client = launcher.WorkerClient()
    launcher.kill_every_worker()  # what the SIGINT/SIGTERM handler does first
    try:
        with pytest.raises(KeyboardInterrupt):
            client.start()  # the run went on to its next measurement: it ends here instead
        assert client.process is None  # nothing was started
    finally:
        launcher.allow_workers()  # as the next command in this process does
    assert not launcher._STOPPING
