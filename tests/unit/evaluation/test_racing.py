"""Racing: the best configs measured again, interleaved, until their intervals separate; only a raced one wins."""

from __future__ import annotations

import dataclasses
import math

import pytest

from tests.helpers import REPLAY
from tests.unit.evaluation.conftest import FakeClock
from tuner.evaluation.estimates import estimate, pass_throughputs
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.racing import contenders, race
from tuner.evaluation.session import BudgetExhausted, TuningSession, best_record
from tuner.records import Record
from tuner.task import load_task


def _record(trial: int, batch: int, tokens_per_s: float, pass_times: list[float], status: str = "ok",
            feasible: bool = True, confirms: int | None = None) -> Record:
    info = {"pass_times_s": pass_times, "window": list(range(max(0, len(pass_times) - 3), len(pass_times)))}
    if confirms is not None:
        info["confirms"] = confirms
    return Record(run="r", task="t", space="s", trial=trial, agent="a", config={"batch_size": batch}, status=status,
                  error=None, metrics={"tokens_per_s": tokens_per_s}, objective=math.log(tokens_per_s),
                  feasible=feasible, cached=False, fingerprint={}, started_at="", duration_s=1.0, info=info)


def test_an_estimate_comes_from_the_agreeing_passes_only():
    steady = _record(0, 8, 100.0, [9.0, 1.0, 1.0, 1.0])  # a slow first pass outside the window changes nothing
    assert [round(value, 6) for value in pass_throughputs(steady)] == [100.0, 100.0, 100.0]
    noisy = _record(1, 8, 100.0, [1.0, 0.9, 1.1])
    wide, narrow = estimate([noisy]), estimate([_record(2, 8, 100.0, [1.0, 0.99, 1.01])])
    assert wide.low < narrow.low < narrow.high < wide.high  # noisier passes, wider interval
    assert estimate([noisy, noisy]).high - estimate([noisy, noisy]).low < wide.high - wide.low  # more passes, narrower
    assert pass_throughputs(dataclasses.replace(steady, info={})) == [] and estimate([]) is None


def _field() -> list[Record]:
    return [_record(0, 8, 100.0, [1.0, 1.02, 0.98]), _record(1, 16, 98.0, [1.0, 1.03, 0.97]),
            _record(2, 32, 50.0, [1.0, 1.0, 1.01]), _record(3, 64, 300.0, [1.0, 1.0, 1.0], feasible=False),
            _record(4, 4, 40.0, [1.0, 1.0, 1.0])]


def _again(scale: dict[int, float]):
    """A measure function: each contender measured again at ``scale[batch]`` times its first throughput."""
    made = []

    def measure(item):
        first = item.records[0]
        value = first.metrics["tokens_per_s"] * scale.get(first.config["batch_size"], 1.0)
        made.append(first.config["batch_size"])
        return _record(10 + len(made), first.config["batch_size"], value, [1.0, 1.01, 0.99], confirms=first.trial)

    return measure, made


def test_the_best_three_inside_the_bounds_enter_the_race():
    assert [item.config["batch_size"] for item in contenders(_field())] == [8, 16, 32]  # 64 breaks a bound


def test_a_race_ends_once_the_leader_separates_and_only_then():
    measure, made = _again({16: 100 / 98})  # measured again, 16 matches 8: their intervals never separate
    outcome = race(_field(), measure, budget=9)
    assert outcome.measurements == 9 and made[:3] == [8, 16, 32] and 32 not in made[3:]  # 32 left after round 1
    assert outcome.ended == "the confirmation budget of 9 measurements is spent"
    measure, made = _again({16: 0.9})  # measured again, 16 falls to 88 tok/s: the leader separates, early
    outcome = race(_field(), measure, budget=9)
    assert outcome.ended == "the leader's interval separated from every other contender's"
    assert made[:3] == [8, 16, 32] and outcome.measurements < 9 and made[-1] in (8, 16)
    measure, _ = _again({})
    assert race(_field(), lambda item: None, budget=9).ended == "no time left for another measurement"
    assert race([_field()[3]], measure).measurements == 0  # nothing inside the bounds: no race


def test_after_a_race_only_a_raced_config_is_best_by_its_mean_score():
    field = _field()
    confirmations = [_record(5, 8, 80.0, [1.0, 1.0, 1.0], confirms=0),  # 8 was lucky the first time
                     _record(6, 16, 97.0, [1.0, 1.0, 1.0], confirms=1),
                     _record(7, 16, 96.0, [1.0, 1.0, 1.0], status="unstable", confirms=1)]
    assert best_record(field).trial == 0  # before the race: the best single measurement
    best = best_record(field + confirmations)
    assert best.trial == 6  # 16's mean beats 8's; shown by its latest stable measurement, not the unstable one
    late = _record(8, 2, 500.0, [1.0, 1.0, 1.0])  # never raced: never named best after a race
    assert best_record(field + confirmations + [late]).trial == 6


def test_the_search_keeps_time_for_the_race_and_the_race_stops_when_it_is_spent(clock: FakeClock, tmp_path):
    task = load_task(REPLAY)
    said: list[str] = []
    with Evaluator(task, tmp_path / "run") as evaluator:
        session = TuningSession(evaluator, 16, time_s=300, clock=clock, on_stop=said.append)
        session.reserve = 2  # 60 s per measurement: the search stops once less than 3 x 60 s is left
        for size in (1, 4, 8):
            session.evaluate({"batch_size": size, "dtype": "float32"})
        with pytest.raises(BudgetExhausted):  # 120 s left: the search stops, keeping the time for the race
            session.evaluate({"batch_size": 16, "dtype": "float32"})
        assert session.spent == 3
        assert "leaves 2m00s, less than a measurement takes here (median 1m00s), 2 more kept for confirming" in said[0]
        first = session.records[0]
        again = [session.confirm(first.config, first.trial) for _ in range(3)]
        assert [record is not None for record in again] == [True, True, False]  # 120 s left: two more, no third
        assert again[0].info["confirms"] == first.trial and not again[0].cached  # measured afresh, not the cache
        assert session.spent == 5 and session.confirmations == 2
