"""TuningSession: one evaluator and one budget, shared by every agent, with best-so-far bookkeeping.

The budget counts backend measurements: a cached result or a config rejected by the space's constraints
costs nothing. A config proposed again in the same run is a *repeat*: it is answered from its earlier record
(the agent learns the same result), costs nothing, gets no trial number and writes no line, so records.jsonl
holds each config once. The session stops early, saying why in one line, when every runnable config of the
space has a record, after ``STALE_PROPOSALS`` repeats in a row, or after ``max_proposals`` proposals.

With a time budget (``time_s``, wall-clock seconds from the session's start) it also stops, saying why, rather than
start a new measurement when the time left is less than a measurement takes here (the median so far); a repeat, a
cache hit or a resumed record takes no time and is still answered.
"""

from __future__ import annotations

import math
import statistics
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.racing import contenders
from tuner.evaluation.resume import Journal, spent_budget
from tuner.records import Record, config_key, finite_or_null
from tuner.space import SearchSpace
from tuner.util.durations import clock_text
from tuner.util.errors import EveryConfigFails, UserError
from tuner.util.numbers import is_number

FAILURES = ("error", "crash", "oom", "timeout")
FAILING_FROM_THE_START = 3  # this many failures before any success: something is broken, not the configs
STALE_PROPOSALS = 20  # repeats in a row after which an agent has nothing new to try (stopped, with a line)
GRID_LIMIT = 50_000  # combinations beyond which the session does not enumerate the space (~1 s) to know it is covered


def announce(line: str) -> None:
    """Print why a session stopped early (stderr, beside the CLI's other notices)."""
    print(f"infertune: {line}", file=sys.stderr, flush=True)


class BudgetExhausted(Exception):
    """Raised when an agent asks for a measurement after the budget is spent."""


class TuningSession:
    """Counts the budget, keeps the records in order, tracks the best rankable record."""

    def __init__(self, evaluator: Evaluator, budget: int, *, max_proposals: int | None = None,
                 on_record: Callable[[TuningSession, Record], None] | None = None,
                 on_training: Callable[[dict[str, float], int], None] | None = None,
                 journal: Journal | None = None, on_stop: Callable[[str], None] | None = announce,
                 time_s: float | None = None, time_used_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
                 started: float | None = None):
        if budget <= 0:
            raise UserError("must be a positive number of measurements", field="--budget", value=budget)
        if time_s is not None and not (time_s > 0 and math.isfinite(time_s)):
            raise UserError("must be a positive duration", field="--time", value=time_s)
        self.evaluator = evaluator
        self.budget = budget
        self.max_proposals = max_proposals or 10 * budget + 20
        self.on_record = on_record
        self.on_training = on_training
        self.on_stop = on_stop  # told the one line saying why the session stopped before its budget was spent
        self.records: list[Record] = []
        self.spent_after: list[int] = []  # budget spent once each record was in (cached ones spend nothing)
        self.best: Record | None = None
        self.allowed = evaluator.runnable_values()
        self.journal = journal or Journal([])
        self._start = evaluator.measurements
        self._spent_elsewhere = 0  # budget spent outside this evaluator: resumed records, parallel envs
        self.last_resumed = False  # the latest record came from the interrupted attempt
        self.last_repeated = False  # the latest proposal named a config this run already holds a record of
        self.repeats = 0  # proposals answered from an earlier record of this run (no record, no budget)
        self.stale = 0  # repeats in a row since the last new config
        self.stop_reason: str | None = None  # why the session stopped before its budget was spent
        self._by_config: dict[str, Record] = {}  # this run's record of each config, by config_key
        self._adopted: set[tuple[str, int]] = set()  # (run, trial) of every record adopted, repeats included
        self._unmeasured = runnable_configs(evaluator.task.space, self.allowed)  # None: too many to enumerate
        self._runnable = len(self._unmeasured or ())
        self.time_s = time_s  # the run's wall-clock budget in seconds, an interrupted attempt's time included
        self.clock = clock
        self._started = clock() if started is None else started  # the caller's start: worker and model included
        self._time_used_before = time_used_s  # what an interrupted attempt used (resume)
        self.durations: list[float] = []  # seconds each measurement took (the next one's expected time)
        self.reserve = 0  # measurements of time the search leaves for confirming the winner (racing)
        self.confirmations = 0  # measurements made to confirm the winner (beyond the budget)

    @property
    def spent(self) -> int:
        """Measurements paid for so far (a resumed run's earlier ones included)."""
        return self.evaluator.measurements - self._start + self._spent_elsewhere

    @property
    def proposals(self) -> int:
        """Configs proposed so far: one per record, plus every repeat."""
        return len(self.records) + self.repeats

    @property
    def exhausted(self) -> bool:
        """No measurement may start any more: the budget is spent, or the session stopped early (``stop_reason``)."""
        return self.spent >= self.budget or self.stop_reason is not None

    def time_left(self) -> float | None:
        """Seconds of the time budget left (negative once passed); None without a time budget."""
        if self.time_s is None:
            return None
        return self.time_s - self._time_used_before - (self.clock() - self._started)

    def time_short(self, held_back: int | None = None) -> str | None:
        """Why a new measurement must not start (too little time left for one), or None.

        ``held_back``: measurements whose time is kept for confirming the winner (default ``self.reserve``; the
        search leaves them to the race, the race itself passes 0).
        """
        left = self.time_left()
        if left is None:
            return None
        budget = clock_text(self.time_s)
        if left <= 0:
            return f"the time budget of {budget} is spent"
        if not self.durations:  # nothing to expect yet: start one while any time is left
            return None
        expected = statistics.median(self.durations)
        kept = self.reserve if held_back is None else held_back
        if left >= expected * (1 + kept):
            return None
        keeping = f", {kept} more kept for confirming the winner" if kept else ""
        return (f"the time budget of {budget} leaves {clock_text(left)}, less than a measurement takes here "
                f"(median {clock_text(expected)}){keeping}")

    def check_time(self) -> bool:
        """Stop when a new measurement would not fit the time left; whether the session is exhausted (parallel PPO
        asks before each step, its envs measuring in sessions of their own)."""
        reason = self.time_short()
        if reason is not None:
            self.stop(reason)
        return self.exhausted

    def evaluate(self, config: Mapping[str, Any], tags: dict[str, Any] | None = None) -> Record:
        """Measure one config through the shared evaluator, once per run.

        A config this run already holds a record of comes back as that record (a repeat: nothing is written or
        spent); in a resumed run, a config the interrupted attempt already measured comes back from its record.

        Args:
            config: knob → value; knobs left out take the space's defaults. Values must be among the knobs'
                choices; a config the space's constraints forbid comes back as an ``infeasible`` record that
                spends no budget.
            tags: extra fields written into the record's ``info`` (e.g. the Optuna study and trial a worker ran).

        Returns:
            The config's ``Record``: measured (status ok or unstable), failed (oom, crash, timeout, error) or
            infeasible; its ``objective`` and ``feasible`` say how the task's objective scores it.

        Raises:
            BudgetExhausted: the budget is spent, or the session stopped early (``stop_reason`` says why), or this
                config would be a new measurement that the time left does not fit (the session stops then).
            EveryConfigFails: the first configs measured all failed: something is broken, not the configs.
        """
        if self.exhausted:
            raise BudgetExhausted(self.stop_reason or f"budget of {self.budget} measurements spent")
        full = self.evaluator.task.space.complete(config)
        earlier = self._by_config.get(config_key(full))
        if earlier is not None:
            self.count_repeat()
            return earlier
        resumed_before = self.journal.resumed
        record = self.journal.take(full)
        if record is None:
            reason = self.time_short()
            if reason is not None and self._takes_time(full):
                self.stop(reason)
                raise BudgetExhausted(reason)
            measured, started = self.evaluator.measurements, self.clock()
            record = self.evaluator.evaluate(config, tags=tags)
            if self.evaluator.measurements > measured:  # timed on the budget's own clock (tests drive it)
                self.durations.append(self.clock() - started)
        else:
            self._spent_elsewhere += spent_budget(record)
            self._add_duration(record)
        self._admit(record, resumed=self.journal.resumed > resumed_before)
        return record

    def adopt(self, record: Record, resumed: bool = True) -> None:
        """Count a record measured elsewhere: an interrupted attempt's (resume) or a parallel env's (PPO).

        A config this session already holds (another env measured it too) counts as a repeat, not a record.
        """
        if (record.run, record.trial) not in self._adopted:  # an env's repeat hands back a record already counted
            self._adopted.add((record.run, record.trial))
            self._spent_elsewhere += spent_budget(record)
            self._add_duration(record)
        if config_key(record.config) in self._by_config:
            self.count_repeat()
            return
        self._admit(record, resumed=resumed)

    def confirm(self, config: Mapping[str, Any], of_trial: int) -> Record | None:
        """Measure ``config`` again, afresh, to confirm the winner (racing; beyond the budget); None when the time
        left does not fit a measurement. The record's ``info["confirms"]`` names the trial it confirms; in a resumed
        run, a confirmation the interrupted attempt already made comes back from its record."""
        full = self.evaluator.task.space.complete(config)
        resumed_before = self.journal.resumed
        record = self.journal.take(full)
        if record is None:
            if self.time_short(held_back=0) is not None:
                return None
            started = self.clock()
            record = self.evaluator.evaluate(full, tags={"confirms": of_trial}, fresh=True)
            self.durations.append(self.clock() - started)
        else:
            self._spent_elsewhere += spent_budget(record)
            self._add_duration(record)
        self.confirmations += 1
        self.last_resumed, self.last_repeated = self.journal.resumed > resumed_before, False
        record.metrics, record.info = finite_or_null(record.metrics), finite_or_null(record.info)
        self.records.append(record)
        self.spent_after.append(self.spent)
        self.best = best_record(self.records)
        if self.on_record is not None:
            self.on_record(self, record)
        return record

    def _takes_time(self, config: Mapping[str, Any]) -> bool:
        """Whether evaluating a complete config measures it: not a constraint rejection, not a cache hit."""
        evaluator = self.evaluator
        if evaluator.task.space.violations(config):
            return False
        return not (evaluator.use_cache and evaluator.lookup(config) is not None)

    def _add_duration(self, record: Record) -> None:
        """A record measured elsewhere (an interrupted attempt, a parallel env): its own ``duration_s``."""
        if spent_budget(record) and is_number(record.duration_s):
            self.durations.append(float(record.duration_s))

    def count_repeat(self) -> None:
        """Count a proposal of a config this run already holds a record of; stop after too many in a row."""
        self.repeats += 1
        self.stale += 1
        self.last_repeated = True
        if self.stale >= STALE_PROPOSALS:
            self.stop(f"{self.stale} proposals in a row named configs this run already has")
        elif self.proposals >= self.max_proposals:
            self.stop(f"{self.proposals} proposals, the most this session allows")

    def stop(self, reason: str) -> None:
        """End the session before its budget is spent, and say why in one line (once)."""
        if self.stop_reason is not None or self.spent >= self.budget:
            return
        self.stop_reason = reason
        if self.on_stop is not None:
            self.on_stop(f"stopped: {reason}; {self.spent} of {self.budget} measurements spent, "
                         f"{len(self.records)} configs recorded, {self.repeats} repeats not recorded again")

    def _admit(self, record: Record, resumed: bool) -> None:
        self.last_resumed, self.last_repeated, self.stale = resumed, False, 0
        record.metrics = finite_or_null(record.metrics)  # a NaN or an infinity is no figure: null, as written
        record.info = finite_or_null(record.info)
        self.records.append(record)
        self._by_config[config_key(record.config)] = record
        self._check_failing(record)
        self.spent_after.append(self.spent)
        if rankable(record) and (self.best is None or record.objective > self.best.objective):
            self.best = record
        if self.on_record is not None:
            self.on_record(self, record)
        self._check_covered(record)

    def _check_covered(self, record: Record) -> None:
        """Stop once every runnable config has a record (or the proposal cap is reached)."""
        if self._unmeasured is not None:
            self._unmeasured.discard(config_key(record.config))
            if not self._unmeasured:
                self.stop(f"every one of the {self._runnable} runnable configs is measured")
        if self.proposals >= self.max_proposals:
            self.stop(f"{self.proposals} proposals, the most this session allows")

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
    """Eligible to be called best: measured with stable timing, meeting every objective constraint, finite score."""
    return record.status == "ok" and record.feasible and is_number(record.objective)


def runnable_configs(space: SearchSpace, allowed: Mapping[str, list[Any]]) -> set[str] | None:
    """Keys of every config the space's constraints allow with values this machine runs; None when there are none
    or more than GRID_LIMIT combinations to look at."""
    if math.prod(len(choices) for choices in space.choices_within(allowed)) > GRID_LIMIT:
        return None
    return {config_key(config) for config in space.grid(allowed)} or None


def best_record(records: list[Record]) -> Record | None:
    """The best rankable record, the first of equals (as a tuning session picks it).

    After a race (records confirming others, ``info["confirms"]``), only a raced config may be best: the one with
    the best mean score over its measurements, shown by its latest rankable record (design §5, racing).
    """
    raced = {config_key(record.config) for record in records if "confirms" in (record.info or {})}
    if raced:
        return raced_best(records, raced)
    best = None
    for record in records:
        if rankable(record) and (best is None or record.objective > best.objective):
            best = record
    return best


def raced_best(records: list[Record], raced: set[str]) -> Record | None:
    """Among the raced configs with a rankable measurement, the best mean score; its latest rankable record."""
    groups = [item for item in contenders(records, count=len(records)) if config_key(item.config) in raced]
    stable = [[record for record in item.records if rankable(record)] for item in groups]
    ranked = [(item.score, rankable_ones) for item, rankable_ones in zip(groups, stable, strict=True) if rankable_ones]
    if not ranked:
        return None
    return max(ranked, key=lambda pair: pair[0])[1][-1]
