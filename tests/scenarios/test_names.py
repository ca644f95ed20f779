"""Run names and task ids are names, not paths: a bad one is one line, exit 2, and nothing is written outside runs/."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPLAY, ROOT
from tuner.commands.common import run_name
from tuner.util.names import MAX_NAME, NAME_RULE, is_name

GOOD = ["a", "0", "_x", "A.b_c-1", "tune-optuna-smollm2-cpu-replay-20261130-101010", "x" * MAX_NAME]
BAD = ["", ".", "..", ".x", "-x", "a/b", "../x", "/tmp/x", "a\\b", "a\nb", "a\n", "a b", "é", "x" * (MAX_NAME + 1)]


@pytest.mark.parametrize("name", GOOD)
def test_safe_names_pass(name):
    assert is_name(name)


@pytest.mark.parametrize("name", [*BAD, None, 3])
def test_paths_and_odd_names_fail(name):
    assert not is_name(name)


def test_a_default_run_name_is_a_safe_name_even_for_the_longest_task_id():
    args = argparse.Namespace(run=None)
    longest = run_name(args, "tune-random", "t" * MAX_NAME) + "-4194304"  # a distributed worker adds its pid
    assert is_name(longest), longest


def _files(root: Path, runs: Path) -> set[str]:
    """Every path under ``root`` but inside ``runs``."""
    return {str(path.relative_to(root)) for path in root.rglob("*") if runs not in (path, *path.parents)}


def _infertune(runs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=300)


def _bad_name_line(field: str, value: str, source: str | None = None) -> str:
    where = f"{source}: {field}" if source else field
    return f"infertune: error: {where}: {NAME_RULE} (got {value!r})"


def test_names_that_are_paths_are_refused_and_write_nothing_outside_the_runs_folder(tmp_path):
    runs = tmp_path / "1" / "2" / "3" / "4" / "5" / "runs"  # deep, so that every escape still lands in tmp_path
    outside = _infertune(runs.parent / "elsewhere", "tune", str(REPLAY), "--agent", "random", "--budget", "2",
                         "--run", "run", "--no-mlflow")  # a real run outside the runs folder, for --resume to reach
    assert outside.returncode == 0, outside.stderr[-2000:]
    task = tmp_path / "task.yaml"
    task.write_text(REPLAY.read_text().replace("id: smollm2-cpu-replay", "id: ../../../../outside/x").replace(
        "recording: recordings/", f"recording: {REPLAY.parent / 'recordings'}/"))
    absolute = str(tmp_path / "abs")
    tune = ["tune", str(REPLAY), "--agent", "random", "--budget", "1", "--no-mlflow"]
    cases = [
        ([*tune, "--run", "../x"], _bad_name_line("--run", "../x")),
        ([*tune, "--run", ".."], _bad_name_line("--run", "..")),
        ([*tune, "--run", absolute], _bad_name_line("--run", absolute)),
        ([*tune, "--run", "."], _bad_name_line("--run", ".")),
        ([*tune, "--run", ""], _bad_name_line("--run", "")),
        ([*tune, "--run", "a\nb"], _bad_name_line("--run", "a\nb")),
        (["tune", str(REPLAY), "--resume", "../elsewhere/run", "--budget", "4", "--no-mlflow"],
         _bad_name_line("--resume", "../elsewhere/run")),
        (["tune", str(REPLAY), "--resume", "", "--no-mlflow"], _bad_name_line("--resume", "")),
        (["measure", str(REPLAY), "--set", "batch_size=1", "--run", "../m", "--no-mlflow"],
         _bad_name_line("--run", "../m")),
        (["compare", str(REPLAY), "--agents", "random", "--budget", "1", "--seeds", "1", "--run", "../c",
          "--no-mlflow"], _bad_name_line("--run", "../c")),
        (["tune", str(task), "--agent", "random", "--budget", "1", "--no-mlflow"],
         _bad_name_line("id", "../../../../outside/x", str(task))),
        (["measure", str(task), "--set", "batch_size=1", "--no-mlflow"],
         _bad_name_line("id", "../../../../outside/x", str(task))),
    ]
    reserved = "infertune keeps this name in the runs folder for its own files (cache, export, mlartifacts, models, "
    cases += [([*tune, "--run", name], f"infertune: error: --run: {reserved}mlflow.db, optuna.db); choose another "
                                       f"(got {name!r})") for name in ("cache", "mlflow.db")]
    runs.mkdir(parents=True)
    (runs / "notes.txt").write_text("the user's own file\n")
    cases.append(([*tune, "--run", "notes.txt"],
                  "infertune: error: --run: a file of that name is in the runs folder, not a run (got 'notes.txt')"))
    before = _files(tmp_path, runs)
    for args, line in cases:
        result = _infertune(runs, *args)
        assert result.returncode == 2, (args, result.stderr[-2000:])
        assert result.stderr.strip().splitlines() == [line], (args, result.stderr[-2000:])
        assert _files(tmp_path, runs) == before, (args, sorted(_files(tmp_path, runs) - before))
    assert sorted(path.name for path in runs.iterdir()) == ["notes.txt"]  # and nothing inside it either
