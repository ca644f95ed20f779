"""A recorded landscape: every config's recorded outcome under its task's objective, with the task's features."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tuner.measure.backends.replay import PREFERENCE, read_recording
from tuner.measure.feasibility import knob_defaults
from tuner.objective import ObjectiveSpec, objective_from_dict, score_row
from tuner.records import Status, strict_json
from tuner.space.loader import read_yaml
from tuner.util.errors import ConfigError
from tuner.util.numbers import is_number

KNOBS = ("batch_size", "dtype", "quantization", "attn_implementation", "cache_implementation", "compile",
         "shard_count")


def config_tuple(config: Mapping[str, Any]) -> tuple:
    """A config as a hashable tuple in the family's knob order; a knob it leaves out has the backend's default."""
    full = {**knob_defaults(), **config}
    return tuple(full[name] for name in KNOBS)


@dataclass(frozen=True)
class Outcome:
    """What the recording says of one config: its objective score and whether it may be called best."""

    score: float
    rankable: bool  # measured stably (ok) and inside every bound of the objective
    value: float | None  # the objective's metric (e.g. tokens_per_s), None when not measured
    ran: bool = True  # False when recorded infeasible: a value only ever infeasible is masked, as in a live run


@dataclass
class Landscape:
    """Every recorded config of one task on one machine, scored by that task's objective."""

    name: str
    objective: ObjectiveSpec
    outcomes: dict[tuple, Outcome]
    features: dict[str, Any] | None = None
    source: str = ""
    values: dict[str, list[Any]] = field(default_factory=dict)  # knob -> values of the recorded configs that ran

    def __post_init__(self) -> None:
        if not self.values:
            ran = [key for key, outcome in self.outcomes.items() if outcome.ran] or list(self.outcomes)
            for index, name in enumerate(KNOBS):
                self.values[name] = sorted({key[index] for key in ran}, key=_order)
        rankable = [outcome.score for outcome in self.outcomes.values() if outcome.rankable]
        self.optimum_score = max(rankable) if rankable else math.nan

    @property
    def configs(self) -> list[tuple]:
        """Every config the landscape answers for, as tuples in KNOBS order."""
        return list(self.outcomes)

    def quality(self, config: tuple) -> float:
        """How good a config is on this landscape: value / optimum's value (maximize), 0 unless rankable.

        The score is ±log(value) minus penalties, so exp(score - optimum score) is the value ratio.
        """
        outcome = self.outcomes.get(config)
        if outcome is None or not outcome.rankable or math.isnan(self.optimum_score):
            return 0.0
        return math.exp(outcome.score - self.optimum_score)

    @property
    def optimum(self) -> tuple | None:
        """The best rankable config."""
        best = [(outcome.score, key) for key, outcome in self.outcomes.items() if outcome.rankable]
        return max(best, key=lambda pair: pair[0])[1] if best else None

    def best_configs(self, count: int) -> list[dict[str, Any]]:
        """The ``count`` best rankable configs, best first, as dicts."""
        ranked = sorted((key for key, outcome in self.outcomes.items() if outcome.rankable),
                        key=lambda key: -self.outcomes[key].score)
        return [dict(zip(KNOBS, key, strict=True)) for key in ranked[:count]]


def _order(value: Any) -> tuple:
    return (0, value, "") if isinstance(value, int | float) else (1, 0, str(value))


def landscape_from_records(name: str, rows: list[dict[str, Any]], objective: ObjectiveSpec,
                           source: str = "") -> Landscape:
    """Score every recorded config (the best-measured copy of a config wins, as in replay)."""
    chosen: dict[tuple, dict[str, Any]] = {}
    for row in rows:
        key = config_tuple(row["config"])
        held = chosen.get(key)
        if held is None or PREFERENCE.get(Status(row["status"]), 9) < PREFERENCE.get(Status(held["status"]), 9):
            chosen[key] = row
    outcomes = {}
    for key, row in chosen.items():
        value, feasible = score_row(objective, row)
        metric = (row.get("metrics") or {}).get(objective.metric)
        outcomes[key] = Outcome(value, row["status"] == "ok" and feasible and math.isfinite(value),
                                metric if is_number(metric) else None, row["status"] != "infeasible")
    features = next((row["features"] for row in rows if row.get("features")), None)
    return Landscape(name, objective, outcomes, features, source)


def load_landscape(task_file: Path) -> Landscape:
    """A library landscape: ``<name>.yaml`` (the task that recorded it: its objective) and ``<name>.jsonl``."""
    recording = task_file.with_suffix(".jsonl")
    if not recording.is_file():
        raise ConfigError("no recording beside the task file", source=str(task_file), field="recording",
                          value=recording.name)
    data = read_yaml(task_file)
    if not isinstance(data, dict):
        raise ConfigError("a task file is a mapping", source=str(task_file))
    objective = objective_from_dict(data.get("objective") or {}, str(task_file))
    rows = read_recording(recording)
    if not rows:
        raise ConfigError("recording holds no records", source=str(recording))
    return landscape_from_records(str(data.get("id") or task_file.stem), rows, objective, str(task_file))


def save_landscape_records(path: Path, rows: list[dict[str, Any]]) -> None:
    """Write records as a recording (one strict JSON object a line: NaN and infinities as null)."""
    path.write_text("".join(strict_json(row, separators=(",", ":")) + "\n" for row in rows))
