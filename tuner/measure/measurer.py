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
        """Answer one request: measure a config, or describe the task. Never raises for a failed measurement.

        Args:
            payload: a JSON-able dict.
                ``op``: ``"measure"`` (the default) or ``"describe"`` (the task's features only, nothing measured).
                ``task``: the worker's view of the task (model, device, workload, accuracy set, seed), as
                ``Evaluator`` builds it from the task file.
                ``config``: for ``measure``, a complete config of the task's space (every knob has a value).
                ``fault`` (optional, tests only): a fault to inject inside the measurement (``tuner.measure.faults``).
            timeout_s: wall-clock seconds the request may take; past it the reply's status is ``timeout`` and the
                measuring process is replaced.
            on_phase: told each phase the measurement enters (loading, warmup, repeats, ...; design §5) as
                ``{"event": "phase", "phase": name, ...}``; a backend that reads a recording tells nothing.

        Returns:
            The reply, a dict with
            ``status``: a ``Status`` value (``ok``, ``unstable``, ``infeasible``, ``oom``, ``crash``, ``timeout``,
            ``error``);
            ``metrics``: metric name → number or None (design §5's names, or §15's under load); empty on failure;
            ``error``: None, or ``{"type", "message", "log_tail", "exit_code"}`` (``protocol.error_payload``);
            ``info``: what is not scored: the code path that ran, the time split, ``reference_metrics`` for bounds
            relative to the reference config;
            ``features`` (optional): the task's model, hardware and workload features (design §14), or None.
        """
        ...

    def runnable_values(self, space: SearchSpace) -> dict[str, list[Any]]:
        """Per knob, the values that can run here at all (others are infeasible); a knob left out: every value."""
        ...

    def close(self) -> None:
        """Release whatever the measurer holds (no process is left behind)."""
        ...
