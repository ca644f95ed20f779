"""A huge budget still ends: every agent stops once the space is covered or its proposals repeat, saying why.

A config proposed again in the same run is answered from its earlier record: no budget, no line in records.jsonl.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPLAY, ROOT
from tuner.agents import make_agent
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import STALE_PROPOSALS, TuningSession, config_key, runnable_configs
from tuner.records import Record, read_records
from tuner.task import TaskSpec, load_task

HUGE = 100_000
RECORDING = REPLAY.parent / "recordings" / "smollm2-cpu.jsonl"


def _replay(folder: Path, batch_sizes: tuple[int, ...] | None) -> TaskSpec:
    """The shipped replay task; with ``batch_sizes``, its recording cut to those (a smaller runnable space)."""
    task = load_task(REPLAY)
    if batch_sizes is None:
        return task
    kept = [line for line in RECORDING.read_text().splitlines()
            if json.loads(line)["config"]["batch_size"] in batch_sizes]
    recording = folder / "cut.jsonl"
    recording.write_text("\n".join(kept) + "\n")
    return dataclasses.replace(task, recording=recording)


def _unique_configs(path: Path) -> bool:
    keys = [config_key(record.config) for record in read_records(path)]
    return len(keys) == len(set(keys))


# Optuna runs on the recording cut to batch size 1 (12 runnable configs): each of its proposals costs ~0.3 s of
# sampler and SQLite here, and on all 48 configs it makes 100-180 proposals, past this file's time limit.
@pytest.mark.parametrize(("name", "options", "batch_sizes"), [
    ("random", {}, None), ("ppo", {}, None), ("ppo", {"policy": "none"}, None), ("optuna", {}, (1,))],
    ids=["random", "ppo-pretrained", "ppo-learning", "optuna"])
def test_each_agent_stops_near_the_space_size_and_says_why(tmp_path, capsys, name, options, batch_sizes):
    task = _replay(tmp_path, batch_sizes)
    with Evaluator(task, tmp_path / "run", agent=name, cache_dir=tmp_path / "cache") as evaluator:
        session = TuningSession(evaluator, HUGE, max_proposals=1000)  # broken stops then fail here, not hang
        runnable = runnable_configs(task.space, session.allowed)
        make_agent(name, **options).search(session, seed=0)
    lines = [line for line in capsys.readouterr().err.splitlines() if line.startswith("infertune: stopped: ")]
    assert len(lines) == 1 and session.stop_reason in lines[0], lines
    assert f"of {HUGE} measurements spent" in lines[0]
    covered = {config_key(record.config) for record in session.records}
    if "runnable configs is measured" in session.stop_reason:
        assert runnable <= covered
    else:
        assert session.stop_reason.startswith(f"{STALE_PROPOSALS} proposals in a row") and not runnable <= covered
        assert session.stale == STALE_PROPOSALS
    assert session.spent <= len(runnable) and len(covered) == len(session.records) <= task.space.size()
    assert session.proposals <= task.space.size() + 3 * STALE_PROPOSALS  # before: thousands, until killed
    records_path = tmp_path / "run" / "records.jsonl"
    assert len(read_records(records_path)) == len(session.records) and _unique_configs(records_path)


def _stubborn(session: TuningSession, config: dict) -> int:
    """An agent that proposes one config forever (what a converged sampler does); returns its proposals."""
    proposals = 0
    while not session.exhausted:
        session.evaluate(config)
        proposals += 1
    return proposals


def test_a_repeated_config_is_answered_from_its_record_and_stops_the_search(tmp_path):
    said: list[str] = []
    config = {"batch_size": 16, "dtype": "float32", "attn_implementation": "sdpa", "cache_implementation": "static"}
    with Evaluator(load_task(REPLAY), tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        session = TuningSession(evaluator, HUGE, max_proposals=1000, on_stop=said.append)
        assert _stubborn(session, config) == 1 + STALE_PROPOSALS
    assert session.spent == 1 and len(session.records) == 1 and session.repeats == STALE_PROPOSALS
    assert said == [f"stopped: {STALE_PROPOSALS} proposals in a row named configs this run already has; 1 of {HUGE} "
                    f"measurements spent, 1 configs recorded, {STALE_PROPOSALS} repeats not recorded again"]
    assert len((tmp_path / "run" / "records.jsonl").read_text().splitlines()) == 1  # not one line per repeat


def test_a_config_handed_back_twice_by_a_parallel_env_is_counted_once(tmp_path):
    """PPO's parallel envs report each record in ``info``; an env's own repeat hands back the record it already
    reported, which must cost the shared budget nothing and count as a repeat."""
    with Evaluator(load_task(REPLAY), tmp_path / "main", cache_dir=tmp_path / "cache") as main, \
            Evaluator(load_task(REPLAY), tmp_path / "env0", cache_dir=tmp_path / "cache") as env0:
        session = TuningSession(main, HUGE, on_stop=None)
        record = env0.evaluate({"batch_size": 4})
        for _ in range(2):
            session.adopt(Record.from_dict(record.to_dict()), resumed=False)
    assert session.spent == 1 and len(session.records) == 1 and session.repeats == 1


def test_tune_with_a_huge_budget_ends_with_one_line_and_no_repeated_records(tmp_path):
    result = subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "tune", str(REPLAY),
                             "--agent", "random", "--budget", str(HUGE), "--run", "huge", "--no-mlflow"],
                            capture_output=True, text=True, cwd=ROOT, timeout=300, env=os.environ.copy())
    assert result.returncode == 0, result.stderr[-2000:]
    stops = [line for line in result.stderr.splitlines() if "stopped" in line]
    assert stops == [f"infertune: stopped: every one of the 48 runnable configs is measured; 48 of {HUGE} "
                     f"measurements spent, 48 configs recorded, 0 repeats not recorded again"]
    records = tmp_path / "huge" / "records.jsonl"
    assert len(read_records(records)) == 48 and _unique_configs(records)


def test_parallel_ppo_stops_when_no_env_has_a_config_left(tmp_path):
    """Each env of parallel PPO stops on its own (its space covered, or repeats); the learner must then stop too
    rather than step idle envs up to its step limit."""
    from tuner.agents.ppo_search import ParallelBudget

    said: list[str] = []
    with Evaluator(load_task(REPLAY), tmp_path / "main", cache_dir=tmp_path / "cache") as main:
        session = TuningSession(main, HUGE, on_stop=said.append)
        callback = ParallelBudget(session, n_envs=2)
        callback.locals = {"infos": [{"budget_exhausted": True}, {"budget_exhausted": True}]}
        assert callback._on_step() is False
    assert session.exhausted and said[0].startswith("stopped: no environment has a new config left to measure")
