"""The closed set of measurement statuses."""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    """Outcome of measuring one config."""

    OK = "ok"
    UNSTABLE = "unstable"  # usable numbers whose repeats did not agree; never ranked best
    INFEASIBLE = "infeasible"  # cannot run here (constraint, hardware, missing library)
    OOM = "oom"
    CRASH = "crash"  # the worker process died
    TIMEOUT = "timeout"
    ERROR = "error"  # an exception inside the worker

    @property
    def measured(self) -> bool:
        """Whether the metrics are real measurements."""
        return self in (Status.OK, Status.UNSTABLE)

    @property
    def cacheable(self) -> bool:
        """Whether measuring again with the same cache key gives the same outcome, so the cache may answer.

        ``unstable`` is not: its repeats disagreed, so another try may be ``ok``. Failures (oom, crash, timeout,
        error) may be transient. ``infeasible`` is, because the key holds every machine fact a backend rules
        it out by (device and its count, cores, library versions, model); a constraint violation is decided
        before the cache and never stored.
        """
        return self in (Status.OK, Status.INFEASIBLE)
