"""A measurement other processes disturbed is measured again once the machine is quiet; nothing measured is lost."""

from __future__ import annotations

import pytest

from tests.helpers import tiny_without_compile
from tuner.evaluation.evaluator import Evaluator
from tuner.measure import contention
from tuner.measure.contention import QuietRule
from tuner.task import load_task
from tuner.util.errors import ConfigError


@pytest.fixture
def foreign_loads(monkeypatch):
    """Other processes' CPU use during each measurement, in order (then 0); waiting for quiet takes no time."""
    loads: list[float] = []
    waits: list[bool] = []
    monkeypatch.setattr(contention.ForeignLoad, "stop", lambda self: loads.pop(0) if loads else 0.0)
    monkeypatch.setattr(QuietRule, "wait_for_quiet", lambda self, groups=tuple: waits.append(True))
    return loads, waits


def test_a_disturbed_measurement_is_measured_again_and_keeps_the_first_attempt(foreign_loads, tmp_path):
    loads, waits = foreign_loads
    task = load_task(tiny_without_compile(tmp_path))
    with Evaluator(task, tmp_path / "run", cache_dir=tmp_path / "cache", quiet=QuietRule()) as evaluator:
        loads[:] = [1.5]  # a test suite beside the first attempt, then quiet
        record = evaluator.evaluate({"batch_size": 4})
        assert waits == [True] and record.info["foreign_cpu_cores"] == 0.0 and record.info["disturbed"] is False
        [first] = record.info["disturbed_attempts"]
        assert first["info"]["foreign_cpu_cores"] == 1.5 and first["metrics"]["tokens_per_s"] > 0  # kept, not lost
        assert evaluator.measurements == 1  # the disturbance is not charged to the config's budget
        loads[:] = [1.5, 1.2]  # disturbed both times: the second is kept, marked, and never cached
        busy = evaluator.evaluate({"batch_size": 1})
        assert busy.info["disturbed"] is True and evaluator.lookup(task.space.complete({"batch_size": 1})) is None
        assert evaluator.lookup(task.space.complete({"batch_size": 4})) is not None
    with Evaluator(task, tmp_path / "off", use_cache=False) as evaluator:  # no rule: measured once, as it came
        loads[:] = [1.5]
        assert "disturbed_attempts" not in evaluator.evaluate({"batch_size": 4}).info


def test_the_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("INFERTUNE_MAX_FOREIGN_CPU", "0.5")
    assert QuietRule.from_environment().max_foreign_cores == 0.5
    monkeypatch.setenv("INFERTUNE_MAX_FOREIGN_CPU", "none")
    assert QuietRule.from_environment() is None
    monkeypatch.delenv("INFERTUNE_MAX_FOREIGN_CPU")
    assert QuietRule.from_environment() == QuietRule()
    monkeypatch.setenv("INFERTUNE_MAX_FOREIGN_CPU", "lots")
    with pytest.raises(ConfigError, match="INFERTUNE_MAX_FOREIGN_CPU"):
        QuietRule.from_environment()
