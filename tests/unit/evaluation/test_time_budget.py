"""The wall-clock budget (``--time``): no new measurement starts that the time left does not fit.

A fake clock advances 60 s per replayed measurement, so the tests run at once and the rule is exact.
"""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path

import pytest

from tests.helpers import REPLAY
from tests.unit.evaluation.conftest import STEP_S, FakeClock
from tuner.agents import make_agent
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.resume import Journal
from tuner.evaluation.session import BudgetExhausted, TuningSession
from tuner.records import read_records
from tuner.run.progress import TrialProgress
from tuner.run.tune import run_tune
from tuner.task import load_task
from tuner.util.durations import clock_text, parse_duration

CONFIGS = [{"batch_size": size, "dtype": dtype} for size in (1, 4, 16) for dtype in ("float32", "bfloat16")]


def _session(evaluator: Evaluator, clock: FakeClock, time_s: float, said: list[str], **options) -> TuningSession:
    return TuningSession(evaluator, 16, time_s=time_s, clock=clock, on_stop=said.append, **options)


def test_durations_are_read_in_the_forms_timeout_takes():
    assert [parse_duration(text) for text in ("90s", "10m", "1.5h", "600", "2.5", ".5m", " 10M ")] == [
        90, 600, 5400, 600, 2.5, 30, 600]
    for bad in ("0", "0s", "-5m", "abc", "inf", "nan", "1e3", "10d", "", "m", "1" * 400):
        assert parse_duration(bad) is None, bad
    assert [clock_text(seconds) for seconds in (600, 41.9, 72, 5400)] == ["10m00s", "0m41s", "1m12s", "1h30m00s"]


def test_a_measurement_that_the_time_left_does_not_fit_is_not_started(tmp_path, clock):
    said: list[str] = []
    with Evaluator(load_task(REPLAY), tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = _session(evaluator, clock, 150, said)
        with pytest.raises(BudgetExhausted):
            make_agent("random").search(session, seed=0)
    # 0 s: nothing measured yet, start; 60 s: 90 s left >= the median 60 s, start; 120 s: 30 s left < 60 s, stop
    assert session.spent == 2 and clock.now == 120 and session.exhausted
    assert said == ["stopped: the time budget of 2m30s leaves 0m30s, less than a measurement takes here (median "
                    "1m00s); 2 of 16 measurements spent, 2 configs recorded, 0 repeats not recorded again"]
    assert len(read_records(tmp_path / "run" / "records.jsonl")) == 2


def test_the_first_measurement_starts_while_any_time_is_left_and_none_once_it_is_spent(tmp_path, clock):
    said: list[str] = []
    with Evaluator(load_task(REPLAY), tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = _session(evaluator, clock, 10, said)  # less than a measurement takes: nothing says so yet
        session.evaluate(CONFIGS[0])
        with pytest.raises(BudgetExhausted):
            session.evaluate(CONFIGS[1])
    assert session.spent == 1 and said[0].startswith("stopped: the time budget of 0m10s is spent; 1 of 16")


def test_a_repeat_or_a_cache_hit_is_answered_when_a_measurement_would_not_fit(tmp_path, clock):
    with Evaluator(load_task(REPLAY), tmp_path / "earlier", cache_dir=tmp_path / "cache") as earlier:
        earlier.evaluate(CONFIGS[1])  # in the shared cache now
    said: list[str] = []
    with Evaluator(load_task(REPLAY), tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = _session(evaluator, clock, 100, said, started=STEP_S)  # the cache fill above took 60 s
        session.evaluate(CONFIGS[0])  # 60 s: 40 s left, less than the 60 s a measurement takes
        assert session.evaluate(CONFIGS[0]).trial == 0 and session.repeats == 1  # a repeat: no time, no stop
        assert session.evaluate(CONFIGS[1]).cached and not session.exhausted  # a cache hit: no time either
        with pytest.raises(BudgetExhausted):
            session.evaluate(CONFIGS[2])
    assert session.spent == 1 and clock.now == 2 * STEP_S and len(session.records) == 2
    assert said[0].startswith("stopped: the time budget of 1m40s leaves 0m40s")


def test_a_resumed_run_has_the_time_its_earlier_attempt_left(tmp_path, clock):
    task = load_task(REPLAY)
    with Evaluator(task, tmp_path / "first", cache_dir=tmp_path / "first-cache") as first:
        taken = [first.evaluate(config) for config in CONFIGS[:2]]
    for record in taken:
        record.duration_s = STEP_S  # what the interrupted attempt's measurements took
    said: list[str] = []
    clock.now = 0.0
    with Evaluator(task, tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        # 240 s in all, 120 s used before: one more measurement (60 s left after it = the median, so a second)
        session = _session(evaluator, clock, 240, said, journal=Journal(taken), time_used_s=2 * STEP_S)
        for config in CONFIGS[:2]:
            assert session.evaluate(config).trial in (0, 1)  # handed back from the journal: free, no time
        session.evaluate(CONFIGS[2])
        session.evaluate(CONFIGS[3])
        with pytest.raises(BudgetExhausted):
            session.evaluate(CONFIGS[4])
    assert session.spent == 4 and said[0].startswith("stopped: the time budget of 4m00s is spent")


@pytest.mark.parametrize(("name", "options"), [("random", {}), ("optuna", {}), ("ppo", {}),
                                               ("ppo", {"policy": "none"})],
                         ids=["random", "optuna", "ppo-pretrained", "ppo-learning"])
def test_every_agent_ends_its_run_cleanly_when_time_is_up(tmp_path, clock, capsys, name, options):
    task = load_task(REPLAY)
    agent = make_agent(name, space=task.space, **options)
    result = run_tune(task, agent, budget=16, seed=0, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
                      out=io.StringIO(), plot=False, time_s=150, clock=clock)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["measurements"] == 2 and summary["time_budget_s"] == 150
    assert summary["stop_reason"].startswith("the time budget of 2m30s leaves 0m30s")
    stops = [line for line in capsys.readouterr().err.splitlines() if "stopped:" in line]
    assert len(stops) == 1 and len(result.records) == 2
    if options.get("policy") == "none":
        assert (tmp_path / "run" / "policy.zip").is_file()  # learning PPO still saves what it learned


def test_without_a_time_budget_the_summary_says_null(tmp_path):
    task = load_task(REPLAY)
    run_tune(task, make_agent("random"), budget=3, seed=0, run_dir=tmp_path / "run", cache_dir=tmp_path / "cache",
             out=None, plot=False)
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["time_budget_s"] is None and summary["stop_reason"] is None and summary["measurements"] == 3


def test_parallel_ppo_stops_when_the_next_step_does_not_fit_the_time_left(tmp_path, clock):
    from tuner.agents.ppo_search import ParallelBudget

    with Evaluator(load_task(REPLAY), tmp_path / "env0", cache_dir=tmp_path / "cache") as env0:
        record = env0.evaluate(CONFIGS[0])
    record = dataclasses.replace(record, duration_s=STEP_S)  # an env's record, measured in its own process
    said: list[str] = []
    clock.now = 0.0
    with Evaluator(load_task(REPLAY), tmp_path / "main", cache_dir=tmp_path / "cache") as main:
        session = _session(main, clock, 100, said)
        callback = ParallelBudget(session, n_envs=2)
        callback.locals = {"infos": [{"record": record.to_dict(), "resumed": False}]}
        clock.now = 30.0  # 70 s left: another 60 s step fits
        callback._share = lambda: None  # no envs to tell here
        assert callback._on_step() is True
        clock.now = 50.0  # 50 s left: it does not
        callback.locals = {"infos": [{"record": {**record.to_dict(), "trial": 1, "config": {
            **record.config, "batch_size": 4}}, "resumed": False}]}
        assert callback._on_step() is False
    assert session.exhausted and said[0].startswith("stopped: the time budget of 1m40s leaves 0m50s")


def test_the_eta_is_the_time_left_when_that_comes_first():
    now, left = [0.0], [1000.0]
    progress = TrialProgress(io.StringIO(), budget=5, spent=lambda: 1, live=False, quiet_s=60,
                             clock=lambda: now[0], announce=False, time_left=lambda: left[0])
    progress.begin(0, {})
    now[0] += 60.0
    progress.end()
    progress.begin(1, {})
    assert progress.eta() == (60.0 * 4, False)  # this one (60 s) and three more
    left[0] = 190.0
    assert progress.eta() == (190.0, True)
    assert "run ETA 3m10s, time budget)" in progress._phase_line()
    progress.end()


def test_a_damaged_time_in_run_json_is_one_line(tmp_path):
    from tuner.commands.tune import _check_saved_types
    from tuner.util.errors import ConfigError

    _check_saved_types({"time_s": 90.5}, Path("run.json"))
    for bad in (-1, 0, True, "10m", float("inf")):
        with pytest.raises(ConfigError, match="damaged run setting"):
            _check_saved_types({"time_s": bad}, Path("run.json"))

