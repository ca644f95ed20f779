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
    def deterministic(self) -> bool:
        """Whether repeating the same config on the same machine gives the same status (so it may be cached)."""
        return self in (Status.OK, Status.UNSTABLE, Status.INFEASIBLE)
