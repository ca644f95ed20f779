"""Leave-one-landscape-out evaluation: every agent tunes a landscape it (and its policy) never saw.

Agents run as users run them: the real agent, through ``run_tune``, on a replay task built for the held-out
landscape, with one budget and one evaluator. Only what they may know differs: the pretrained policy and the
warm start read the other landscapes only.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from tuner.agents import Agent
from tuner.evaluation.session import rankable
from tuner.library.landscape import KNOBS, Landscape, config_tuple
from tuner.measure.feasibility import hf_space
from tuner.run.tune import run_tune
from tuner.space.loader import read_yaml
from tuner.task import TaskSpec, load_task

TARGET = 0.95


@dataclass(frozen=True)
class Fold:
    """One held-out landscape and the landscapes everything else may learn from."""

    heldout: Landscape
    training: list[Landscape]


def folds(library: Sequence[Landscape]) -> Iterator[Fold]:
    """One fold per landscape; its training set is every other landscape (never the held-out one)."""
    for landscape in library:
        yield Fold(landscape, [other for other in library if other.name != landscape.name])


def replay_task(landscape: Landscape, folder: Path) -> TaskSpec:
    """A replay task over ``landscape``: its recording, its objective, a space of exactly the values it holds."""
    folder.mkdir(parents=True, exist_ok=True)
    constraints = [constraint.text for constraint in hf_space().constraints]
    knobs = {}
    for name in KNOBS:
        knob = hf_space().knob(name)
        # the space's own default where the landscape holds it: the config a user starts from, and the coordinate
        # agent's first measurement (the other agents never read a default)
        default = knob.default if knob.default in landscape.values[name] else landscape.values[name][0]
        knobs[name] = {"type": knob.type, "choices": landscape.values[name], "default": default}
        costly = [value for value in knob.costly if value in landscape.values[name] and value != default]
        if costly:  # what a live search would pay a setup for (cost-aware agents screen these moves)
            knobs[name]["costly"] = costly
    space = folder / f"{landscape.name}-space.yaml"
    space.write_text(yaml.safe_dump({"id": f"{landscape.name}-space", "version": 1, "knobs": knobs,
                                     "constraints": constraints}, sort_keys=False))
    objective = read_yaml(Path(landscape.source)).get("objective") or {}
    task = folder / f"{landscape.name}-replay.yaml"
    task.write_text(yaml.safe_dump({"id": landscape.name, "backend": "replay",
                                    "recording": str(Path(landscape.source).with_suffix(".jsonl").resolve()),
                                    "search_space": str(space.resolve()), "objective": objective, "budget": 8},
                                   sort_keys=False))
    return load_task(task)


def quality_curve(landscape: Landscape, configs: Sequence[dict[str, Any]], rankables: Sequence[bool],
                  spent_after: Sequence[int], budget: int) -> list[float]:
    """Best quality (value / the landscape's optimum) found after each of ``budget`` measurements."""
    curve = []
    for measurements in range(1, budget + 1):
        found = [landscape.quality(config_tuple(config))
                 for config, good, spent in zip(configs, rankables, spent_after, strict=True)
                 if good and spent <= measurements]
        curve.append(max(found, default=0.0))
    return curve


def run_agent(landscape: Landscape, task: TaskSpec, agent: Agent, budget: int, seed: int,
              workdir: Path | None = None) -> list[float]:
    """One tuning run of ``agent`` on the held-out landscape; its best-quality curve."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        run_dir = Path(scratch) / "run"
        result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=run_dir / "cache",
                          out=None, plot=False)
    return quality_curve(landscape, [record.config for record in result.records],
                         [rankable(record) for record in result.records], result.spent_after, budget)


def measurements_to_target(curve: Sequence[float], target: float = TARGET) -> int | None:
    """First measurement count whose best reaches ``target`` of the optimum (None if never)."""
    return next((position for position, value in enumerate(curve, start=1) if value >= target), None)


def mean_ci(values: Sequence[float]) -> tuple[float, float]:
    """Mean and the half-width of its 95% confidence interval (normal approximation)."""
    count = len(values)
    if count == 0:
        return math.nan, math.nan
    mean = sum(values) / count
    if count == 1:
        return mean, math.nan
    variance = sum((value - mean) ** 2 for value in values) / (count - 1)
    return mean, 1.96 * math.sqrt(variance / count)

