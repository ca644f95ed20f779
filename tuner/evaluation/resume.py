"""Resume: the records an interrupted run already holds, handed back when its agent proposes them again.

Agents are deterministic given their seed and the results they see, so a resumed agent proposes the same
configs in the same order; each one found here is answered from the record instead of being measured
again, and costs the budget it cost the first time. The first config not found is measured for real.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from tuner.records import Record


def spent_budget(record: Record) -> bool:
    """Whether measuring ``record`` spent a unit of budget (cache hits and constraint rejections do not)."""
    rejected = bool(record.error) and record.error.get("type") == "ConstraintViolated"
    return not record.cached and not rejected


class Journal:
    """Records of the interrupted attempt not yet handed back, in the order they were taken."""

    def __init__(self, records: list[Record]):
        self.pending = list(records)
        self.resumed = 0  # records handed back so far

    def __len__(self) -> int:
        return len(self.pending)

    def take(self, config: Mapping[str, Any]) -> Record | None:
        """The earliest pending record of exactly ``config`` (removed), or None."""
        for index, record in enumerate(self.pending):
            if record.config == dict(config):
                self.resumed += 1
                return self.pending.pop(index)
        return None

    def take_trial(self, trial: int) -> Record | None:
        """The pending record with run-local trial number ``trial`` (removed), or None."""
        for index, record in enumerate(self.pending):
            if record.trial == trial:
                self.resumed += 1
                return self.pending.pop(index)
        return None
