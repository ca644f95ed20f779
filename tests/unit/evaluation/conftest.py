"""Fixtures of the evaluation tests: a fake clock that replayed measurements move."""

from __future__ import annotations

import pytest

from tuner.measure.backends.replay import ReplayMeasurer

STEP_S = 60.0  # what each measurement takes on the fake clock


class FakeClock:
    """A clock that moves only when a replayed measurement is made (``STEP_S`` each)."""

    def __init__(self, now: float = 0.0):
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch) -> FakeClock:
    """The fake clock, advanced by every replayed measurement (never by a cache hit or a repeat)."""
    fake = FakeClock()
    request = ReplayMeasurer.request

    def slow_request(self, payload, timeout_s, on_phase=None):
        fake.now += STEP_S if payload.get("op") == "measure" else 0.0  # describing the task takes no time here
        return request(self, payload, timeout_s, on_phase)

    monkeypatch.setattr(ReplayMeasurer, "request", slow_request)
    return fake
