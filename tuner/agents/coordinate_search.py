"""Coordinate search from the default config: one knob at a time, as an engineer tunes by hand.

It measures the space's default config (the untuned baseline), then walks the knobs in the space's order: for an
ordered knob (batch size) it tries the largest value, then halfway back towards the current one; for any other
knob each other value. A change is kept when its record is inside every bound and scores higher. A change the
space's constraints forbid alone (compile needs a static cache) takes the fewest other changes that make it
allowed. Passes repeat from the new best until one changes nothing; then the nearest configs not measured yet,
cheap ones first at each distance, in a seeded order. Early stop makes a hopeless try cheap: it is pruned after
its first pass, or before any timing when it breaks an accuracy bound.

It sees cost: a value the space marks ``costly`` (compile, tensor-parallel shards) pays a fixed setup on every
measurement. Once the best config carries one, a move on another knob is screened on its cheap twin (the same
move with the costly knobs at their defaults) against the best's own twin, and paid for only when the twin is
faster (a latency bound the twin breaks does not count: compiling may fix it): with equal expected gain, the
cheaper measurement goes first.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from typing import Any

from tuner.agents.base import Agent
from tuner.evaluation.session import TuningSession
from tuner.measure.early_stop import StopRule
from tuner.records import Record, Status, config_key
from tuner.util.numbers import is_number

ORDERED_TRIES = 3  # tries per ordered knob and pass: the largest value, then halfway back, twice


def _improves(record: Record, best: Record | None) -> bool:
    """Whether ``record`` is a better place to stand than ``best``: measured inside every bound, a higher score."""
    usable = record.status in ("ok", "unstable") and record.feasible
    if best is None:
        return True
    best_usable = best.status in ("ok", "unstable") and best.feasible
    if usable != best_usable:
        return usable
    return record.objective > best.objective


class CoordinateAgent(Agent):
    """Coordinate ascent over the knobs from the default config, then the nearest unmeasured configs."""

    name = "coordinate"

    def __init__(self, cost_aware: bool = True):
        self.cost_aware = cost_aware  # False: every move measured as it is (the benchmarks' ablation)

    def search(self, session: TuningSession, seed: int) -> None:
        """Measure the default, improve one knob at a time while a pass changes something, then look nearby."""
        space = session.evaluator.task.space
        grid = list(space.grid(session.allowed))
        if not grid:
            return
        order = [knob.name for knob in space.knobs if len({config[knob.name] for config in grid}) > 1]
        tried: dict[str, Record] = {}

        def measure(config: Mapping[str, Any]) -> Record | None:
            if session.exhausted:
                return None
            key = config_key(config)
            if key not in tried:
                tried[key] = session.evaluate(config)
            return tried[key]

        def worth_paying_for(candidate: dict[str, Any], moved: str) -> bool | None:
            """Whether the move's costly version may gain, judged on cheap twins (None: the budget ran out)."""
            knob = space.knob(moved)
            if (not self.cost_aware or not _costly_knobs(space, candidate) - {moved}
                    or knob.is_costly(candidate[moved]) or knob.is_costly(best.config[moved])):
                return True  # nothing to screen: cheap, its cost is the move itself, or it drops a cost
            twin, base = _cheap_twin(space, candidate), _cheap_twin(space, best.config)
            if config_key(twin) not in allowed or config_key(base) not in allowed:
                return True
            base_record = measure(base)
            twin_record = measure(twin) if base_record is not None else None
            return None if twin_record is None else _twin_gains(twin_record, base_record, objective)

        allowed = {config_key(config) for config in grid}
        objective = session.evaluator.task.objective
        best = measure(_nearest(grid, space.defaults(), None, None))
        changed = True
        while changed and best is not None and not session.exhausted:
            changed = False
            for name in order:
                for value in self._values_to_try(space, grid, best.config, name):
                    candidate = _nearest(grid, best.config, name, value)
                    worth = worth_paying_for(candidate, name)
                    if worth is None:
                        return
                    if not worth:
                        continue
                    record = measure(candidate)
                    if record is None:
                        return
                    if _improves(record, best):
                        best, changed = record, True
                        break
        if best is None:
            return
        rng = random.Random(seed)
        rest = [config for config in grid if config_key(config) not in tried]
        rng.shuffle(rest)
        # stable: shuffled within each distance, cheap before costly
        rest.sort(key=lambda config: (_distance(config, best.config),
                                      len(_costly_knobs(space, config)) if self.cost_aware else 0))
        for config in rest:
            if measure(config) is None:
                return

    @staticmethod
    def _values_to_try(space: Any, grid: list[dict[str, Any]], current: Mapping[str, Any], name: str) -> list[Any]:
        """The values of ``name`` to try from ``current``: for an ordered knob the largest, then halfway back."""
        values = [choice for choice in space.knob(name).choices if any(config[name] == choice for config in grid)]
        if space.knob(name).type != "int":
            return [value for value in values if value != current[name]]
        here = values.index(current[name])
        picks, low, high = [], here, len(values) - 1
        for _ in range(ORDERED_TRIES):
            if high <= low:
                break
            picks.append(values[high])
            high = (low + high) // 2 if (low + high) // 2 > low else low
        return picks or values[here - 1:here]  # already the largest: one step down (a bound may want less)


def _twin_gains(twin: Record, base: Record, objective: Any) -> bool:
    """Whether a move helped the cheap twins: a faster twin (by the objective's metric), bounds aside except accuracy.

    A latency bound the cheap twin breaks, its costly version may keep (compiling makes each step faster), so
    only an accuracy break (which the costly knobs do not change) or a failure rules the move out.
    """
    mine, theirs = twin.metrics.get(objective.metric), base.metrics.get(objective.metric)
    if not Status(base.status).scored or not is_number(theirs):
        return True  # the best's twin failed (it may only fit sharded): no yardstick, pay for the move
    if not Status(twin.status).scored:
        return False
    if StopRule.for_objective(objective, None).accuracy_miss(twin.metrics, twin.info.get("reference_metrics")):
        return False
    if not is_number(mine):
        return True  # no figure to judge by: pay for the move, as without screening
    return mine > theirs if objective.direction == "maximize" else mine < theirs


def _costly_knobs(space: Any, config: Mapping[str, Any]) -> set[str]:
    """The knobs ``config`` sets to a costly value."""
    return {knob.name for knob in space.knobs if knob.is_costly(config[knob.name])}


def _cheap_twin(space: Any, config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with every costly knob at its default (the knob's cheap value)."""
    return {name: space.knob(name).default if space.knob(name).is_costly(value) else value
            for name, value in config.items()}


def _distance(config: Mapping[str, Any], other: Mapping[str, Any]) -> int:
    """Knobs on which two configs differ."""
    return sum(config[name] != other.get(name) for name in config)


def _nearest(grid: list[dict[str, Any]], base: Mapping[str, Any], name: str | None, value: Any) -> dict[str, Any]:
    """The runnable config closest to ``base`` with ``name`` set to ``value`` (the first of equals, in grid order)."""
    candidates = grid if name is None else [config for config in grid if config[name] == value]
    return min(candidates, key=lambda config: _distance(config, base))
