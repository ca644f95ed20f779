"""Confirm the winner before naming it: the top contenders measured again, interleaved, until they separate.

After the search, the best few configs inside every bound (``ok`` or ``unstable``: a noisy measurement still
competes) are measured again in rounds, one measurement each per round, as F-Race and irace do. A contender
whose 95% interval of tokens/s lies wholly below the leader's leaves the race; the race ends when one is left
after a confirmation of its own, or when the confirmation budget (measurements, and the session's time) is spent.
The winner is then the confirmed config with the best pooled score (``session.best_record``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from tuner.evaluation.estimates import Estimate, estimate
from tuner.records import Record, config_key

CONTENDERS = 3  # configs that enter the race
CONFIRMATIONS = 3  # measurements a race may spend by default


@dataclass
class Contender:
    """One config in the race: its measurements, the first (the search's) included."""

    records: list[Record]

    @property
    def config(self) -> dict:
        """The config raced."""
        return self.records[0].config

    @property
    def score(self) -> float:
        """Mean objective over its measurements (each a whole measurement, so equally weighted)."""
        scored = [record.objective for record in self.records if record.status in ("ok", "unstable")]
        return sum(scored) / len(scored) if scored else float("-inf")

    @property
    def estimate(self) -> Estimate | None:
        """Tokens/s pooled over every agreeing pass of its measurements, with its 95% interval."""
        return estimate(self.records)


@dataclass
class RaceOutcome:
    """What the race did: its contenders (their measurements), how many it spent, and why it ended."""

    contenders: list[Contender] = field(default_factory=list)
    measurements: int = 0
    ended: str = "no contender: nothing inside every bound was measured"


def contenders(records: Sequence[Record], count: int = CONTENDERS) -> list[Contender]:
    """The best ``count`` configs measured whole (ok or unstable) inside every bound, best score first."""
    groups: dict[str, list[Record]] = {}
    for record in records:
        if record.status in ("ok", "unstable") and record.feasible:
            groups.setdefault(config_key(record.config), []).append(record)
    ranked = sorted((Contender(group) for group in groups.values()), key=lambda item: item.score, reverse=True)
    return ranked[:count]


def _left_behind(field_: list[Contender]) -> list[Contender]:
    """Contenders whose interval lies wholly below the leader's (by pooled tokens/s)."""
    rated = [(item, item.estimate) for item in field_]
    known = [(item, value) for item, value in rated if value is not None]
    if len(known) < 2:
        return []
    leader = max(known, key=lambda pair: pair[1].mean)[1]
    return [item for item, value in known if value is not leader and leader.separates_from(value)]


def race(records: Sequence[Record], measure: Callable[[Contender], Record | None], budget: int = CONFIRMATIONS,
         count: int = CONTENDERS, throughput: bool = True) -> RaceOutcome:
    """Race the best ``count`` configs of ``records``, spending at most ``budget`` measurements through ``measure``.

    ``measure`` measures a contender's config again (a fresh measurement, never the cache) and returns its
    record, or None when no measurement may start any more (the session's time is spent). ``throughput``:
    whether the objective is tokens/s, so intervals can separate contenders; otherwise each contender is
    measured in turn until the budget is spent.
    """
    entrants = contenders(records, count)
    outcome = RaceOutcome(entrants)
    if not entrants:
        return outcome
    alive = list(entrants)
    while True:
        for item in list(alive):
            if outcome.measurements >= budget:
                outcome.ended = f"the confirmation budget of {budget} measurements is spent"
                return outcome
            record = measure(item)
            if record is None:
                outcome.ended = "no time left for another measurement"
                return outcome
            item.records.append(record)
            outcome.measurements += 1
        if throughput:
            behind = _left_behind(alive)
            alive = [item for item in alive if item not in behind]
        if len(alive) == 1:
            outcome.ended = ("the leader's interval separated from every other contender's" if len(entrants) > 1
                             else "the only contender is confirmed")
            return outcome
