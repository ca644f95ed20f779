"""``--time`` at the command line: its forms, its one-line errors, the first line, run.json, summary.json, resume."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import REPLAY, infertune
from tuner.cli import build_parser

MESSAGE = "argument --time: must be a positive duration such as 90s, 10m, 1.5h or 600 (seconds) (got {!r})"


@pytest.mark.parametrize(("text", "seconds"), [("90s", 90), ("10m", 600), ("1.5h", 5400), ("600", 600)])
def test_the_forms_of_a_time_budget(text, seconds):
    assert build_parser().parse_args(["tune", str(REPLAY), "--time", text]).time == seconds
    assert build_parser().parse_args(["compare", str(REPLAY), "--time", text]).time == seconds


@pytest.mark.parametrize("text", ["0", "abc", "inf", "nan", "-5m", "10 min"])
@pytest.mark.parametrize("command", ["tune", "compare"])
def test_a_bad_time_budget_is_one_line_naming_the_flag_and_value(capsys, command, text):
    with pytest.raises(SystemExit) as stop:
        build_parser().parse_args([command, str(REPLAY), f"--time={text}"])
    assert stop.value.code == 2
    assert capsys.readouterr().err == f"infertune {command}: error: {MESSAGE.format(text)}\n"


def test_a_negative_time_after_a_space_is_still_one_line(capsys):
    with pytest.raises(SystemExit) as stop:  # argparse takes "-5m" for an option: its own one line
        build_parser().parse_args(["tune", str(REPLAY), "--time", "-5m"])
    err = capsys.readouterr().err
    assert stop.value.code == 2 and err.count("\n") == 1 and "--time" in err


def _set_durations(run: Path, seconds: float) -> None:
    lines = [json.loads(line) for line in (run / "records.jsonl").read_text().splitlines()]
    (run / "records.jsonl").write_text("".join(json.dumps({**line, "duration_s": seconds}) + "\n" for line in lines))


def test_a_time_budget_is_said_saved_and_resumed_with_the_time_left(tmp_path):
    started = infertune("tune", str(REPLAY), "--agent", "random", "--budget", "3", "--time", "10m", "--run", "t",
                        "--no-mlflow", runs=tmp_path)
    assert started.returncode == 0, started.stderr
    assert started.stdout.splitlines()[0].startswith("tuning smollm2-cpu-replay with random: budget 3 measurements "
                                                     "or 10m00s, seed ")
    run = tmp_path / "t"
    assert json.loads((run / "run.json").read_text())["time_s"] == 600
    summary = json.loads((run / "summary.json").read_text())
    assert summary["time_budget_s"] == 600 and summary["stop_reason"] is None and summary["measurements"] == 3

    _set_durations(run, 250.0)  # 12m30s used: nothing left to measure, whatever --budget says
    done = infertune("tune", str(REPLAY), "--resume", "t", "--budget", "6", "--no-mlflow", runs=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("t: already used 12m30s of a time budget of 10m00s (on --resume, --time is the "
                                   "run's total): nothing to measure; a larger --time goes on")

    _set_durations(run, 150.0)  # 7m30s used, 2m30s left: less than the 2m30s a measurement took, once time passes
    (run / "summary.json").unlink()
    resumed = infertune("tune", str(REPLAY), "--resume", "t", "--budget", "6", "--no-mlflow", runs=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "budget 6 measurements or 10m00s (7m30s used before)" in resumed.stdout.splitlines()[0]
    stops = [line for line in resumed.stderr.splitlines() if "stopped:" in line]
    assert len(stops) == 1 and stops[0].startswith("infertune: stopped: the time budget of 10m00s leaves 2m2")
    assert "(median 2m30s); 3 of 6 measurements spent" in stops[0]
    summary = json.loads((run / "summary.json").read_text())
    assert summary["measurements"] == 3 and summary["stop_reason"].startswith("the time budget of 10m00s leaves")


def test_compare_gives_each_agent_run_the_time_budget(tmp_path):
    result = infertune("compare", str(REPLAY), "--agents", "random", "--seeds", "1", "--budget", "3", "--time",
                       "90s", "--run", "c", "--no-mlflow", runs=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "c" / "compare.json").read_text())["time_budget_s"] == 90
    assert json.loads((tmp_path / "c" / "random-seed0" / "summary.json").read_text())["time_budget_s"] == 90
