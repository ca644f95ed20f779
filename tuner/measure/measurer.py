"""The one interface every measuring backend implements (HF worker, sharded HF, replay, serving).

The Evaluator talks to a ``Measurer`` only: it never asks which kind it holds.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

from tuner.space import SearchSpace


@runtime_checkable
class Measurer(Protocol):
    """Measures one config per request; a failure comes back as a reply with a status, never as an exception."""

    @property
    def fingerprint(self) -> dict[str, Any]:
        """The hardware and software the numbers come from (part of the cache key and of every record)."""
        ...

    @property
    def starts(self) -> int:
        """Measuring processes started so far (0 for a backend that runs nothing)."""
        ...

    @property
    def pid(self) -> int | None:
        """The live measuring process, or None when none runs."""
        ...

    def request(self, payload: dict[str, Any], timeout_s: float,
                on_phase: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Measure ``payload['config']``: a reply with status, metrics, error and info (DESIGN §5).

        ``on_phase`` (optional) is told each phase the measurement enters: ``{"event": "phase", "phase": ...}``.
        """
        ...

    def runnable_values(self, space: SearchSpace) -> dict[str, list[Any]]:
        """Per knob, the values that can run here at all (others are infeasible); a knob left out: every value."""
        ...

    def close(self) -> None:
        """Release whatever the measurer holds (no process is left behind)."""
        ...
