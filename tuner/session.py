"""TuningSession: one evaluator and one budget, shared by every agent, with best-so-far bookkeeping.

The budget counts backend measurements: a cached result or a config rejected by the space's constraints
costs nothing. ``max_proposals`` bounds the loop when an agent keeps proposing configs it already has.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from tuner.errors import EveryConfigFails, UserError
from tuner.evaluator import Evaluator
from tuner.journal import Journal, spent_budget
from tuner.records import Record

FAILURES = ("error", "crash", "oom", "timeout")
FAILING_FROM_THE_START = 3  # this many failures before any success: something is broken, not the configs


class BudgetExhausted(Exception):
    """Raised when an agent asks for a measurement after the budget is spent."""


class TuningSession:
    """Counts the budget, keeps the records in order, tracks the best rankable record."""

    def __init__(self, evaluator: Evaluator, budget: int, *, max_proposals: int | None = None,
                 on_record: Callable[[TuningSession, Record], None] | None = None,
                 on_training: Callable[[dict[str, float], int], None] | None = None,
                 journal: Journal | None = None):
        if budget <= 0:
            raise UserError("must be a positive number of measurements", field="--budget", value=budget)
        self.evaluator = evaluator
        self.budget = budget
        self.max_proposals = max_proposals or 10 * budget + 20
        self.on_record = on_record
        self.on_training = on_training
        self.records: list[Record] = []
        self.spent_after: list[int] = []  # budget spent once each record was in (cached ones spend nothing)
        self.best: Record | None = None
        self.allowed = evaluator.runnable_values()
        self.journal = journal or Journal([])
        self._start = evaluator.measurements
        self._spent_elsewhere = 0  # budget spent outside this evaluator: resumed records, parallel envs
        self.last_resumed = False  # the latest record came from the interrupted attempt

    @property
    def spent(self) -> int:
        """Measurements paid for so far (a resumed run's earlier ones included)."""
        return self.evaluator.measurements - self._start + self._spent_elsewhere

    @property
    def exhausted(self) -> bool:
        """No measurement may start any more."""
        return self.spent >= self.budget or len(self.records) >= self.max_proposals

    def evaluate(self, config: Mapping[str, Any], tags: dict[str, Any] | None = None) -> Record:
        """Measure one config through the shared evaluator; BudgetExhausted once the budget is spent.

        In a resumed run, a config the interrupted attempt already measured comes back from its record.
        """
        if self.exhausted:
            raise BudgetExhausted(f"budget of {self.budget} measurements spent")
        resumed_before = self.journal.resumed
        record = self.journal.take(self.evaluator.task.space.complete(config))
        if record is None:
            record = self.evaluator.evaluate(config, tags=tags)
        else:
            self._spent_elsewhere += spent_budget(record)
        self._admit(record, resumed=self.journal.resumed > resumed_before)
        return record

    def adopt(self, record: Record, resumed: bool = True) -> None:
        """Count a record measured elsewhere: an interrupted attempt's (resume) or a parallel env's (PPO)."""
        self._spent_elsewhere += spent_budget(record)
        self._admit(record, resumed=resumed)

    def _admit(self, record: Record, resumed: bool) -> None:
        self.last_resumed = resumed
        self.records.append(record)
        self._check_failing(record)
        self.spent_after.append(self.spent)
        if rankable(record) and (self.best is None or record.objective > self.best.objective):
            self.best = record
        if self.on_record is not None:
            self.on_record(self, record)

    def _check_failing(self, record: Record) -> None:
        measured = [item for item in self.records if item.status != "infeasible"]
        if record.status in FAILURES and len(measured) >= FAILING_FROM_THE_START and all(
                item.status in FAILURES for item in measured):
            first = measured[0].error or {}
            raise EveryConfigFails(
                f"stopped: the first {len(measured)} measured configs all failed ({self.spent} of {self.budget} "
                f"measurements spent); first error: {first.get('type')}: {first.get('message')}")

    def report_training(self, metrics: dict[str, float], step: int) -> None:
        """Forward an agent's own training metrics (e.g. PPO losses) to whoever tracks the run."""
        if self.on_training is not None:
            self.on_training(metrics, step)


def rankable(record: Record) -> bool:
    """Eligible to be called best: measured with stable timing and meeting every objective constraint."""
    return record.status == "ok" and record.feasible


def best_record(records: list[Record]) -> Record | None:
    """The best rankable record, the first of equals (as a tuning session picks it)."""
    best = None
    for record in records:
        if rankable(record) and (best is None or record.objective > best.objective):
            best = record
    return best
