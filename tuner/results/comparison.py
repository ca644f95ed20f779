"""Comparing agents, read back: best-so-far curves, measurements to 95% of the best known, regret, the table.

Per agent: best-so-far objective metric against measurements (mean and min-max over seeds), measurements
needed to reach 95% of the best known feasible value, regret at the budget.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.evaluation.session import rankable
from tuner.measure.backends.replay import read_recording
from tuner.objective import score_row
from tuner.records import Record
from tuner.results.curves import has_value, none_value, seed_band
from tuner.task import TaskSpec
from tuner.util.formatting import shown, table
from tuner.util.numbers import is_number

TARGET_SHARE = 0.95


@dataclass
class SeedRun:
    """One agent on one seed: best-so-far metric after each measurement."""

    agent: str
    seed: int
    curve: list[float]  # index m-1: best rankable metric after m measurements (nan before any)
    run_dir: Path


def best_so_far(records: Sequence[Record], spent_after: Sequence[int], budget: int, metric: str,
                maximize: bool = True) -> list[float]:
    """Best rankable value of ``metric`` after each of ``budget`` measurements (nan before any).

    ``spent_after[i]`` is the budget spent once record i was in: cached or rejected configs spend nothing.
    """
    curve = []
    for measurements in range(1, budget + 1):
        values = [record.metrics[metric] for record, spent in zip(records, spent_after, strict=True)
                  if spent <= measurements and rankable(record) and is_number(record.metrics.get(metric))]
        curve.append((max(values) if maximize else min(values)) if values else math.nan)
    return curve


def best_known(task: TaskSpec, runs: Sequence[Sequence[Record]]) -> float:
    """Best feasible value of the objective's metric: over the recording (replay) and every compared run."""
    metric = task.objective.metric
    values = [record.metrics[metric] for records in runs for record in records
              if rankable(record) and is_number(record.metrics.get(metric))]
    if task.recording is not None:
        for row in read_recording(task.recording):
            value = (row.get("metrics") or {}).get(metric)
            if row["status"] == "ok" and is_number(value) and score_row(task.objective, row)[1]:
                values.append(value)
    if not values:
        return math.nan
    return max(values) if task.objective.direction == "maximize" else min(values)


def measurements_to(curve: Sequence[float], reference: float, maximize: bool = True) -> int | None:
    """First measurement count within 95% of ``reference`` (None if never)."""
    for position, value in enumerate(curve, start=1):
        if (value >= TARGET_SHARE * reference) if maximize else (value <= reference / TARGET_SHARE):
            return position
    return None


def summarize(task: TaskSpec, seed_runs: Sequence[SeedRun], reference: float) -> list[dict[str, Any]]:
    """Per agent: measurements to 95% (mean, min, max; how many seeds got there), the final best over every seed
    (a seed with no feasible config counted as ``none_value``), and the final regret over the seeds with one."""
    rows = []
    maximize = task.objective.direction == "maximize"
    none = none_value([run.curve for run in seed_runs], maximize)
    for agent in dict.fromkeys(run.agent for run in seed_runs):
        runs = [run for run in seed_runs if run.agent == agent]
        hits = [measurements_to(run.curve, reference, maximize) for run in runs]
        reached = [hit for hit in hits if hit is not None]
        budget = len(runs[0].curve)
        # a seed that never reached the target is counted at budget + 1: a lower bound, said in the table
        counted = [hit if hit is not None else budget + 1 for hit in hits]
        finals = [run.curve[-1] for run in runs]
        feasible = [final for final in finals if has_value(final)]
        regrets = [abs(math.log(reference / final)) if final > 0 and reference > 0 else math.inf
                   for final in feasible]
        rows.append({"agent": agent, "seeds": len(runs), "reached": len(reached),
                     "to95_mean": sum(counted) / len(counted), "to95_min": min(counted), "to95_max": max(counted),
                     "feasible_seeds": len(feasible),
                     "final_mean": seed_band([run.curve for run in runs], none).mean[-1],
                     "regret_mean": sum(regrets) / len(regrets) if regrets else math.nan})
    return rows


def write_curves(seed_runs: Sequence[SeedRun], out_dir: Path, metric: str, none: float) -> None:
    """curves.csv (per seed: the best so far, empty while a seed has no feasible config) and curves_summary.csv
    (per agent: the mean, min and max over every seed with "none yet" counted as ``none``, and the share of seeds
    with a feasible config)."""
    with open(out_dir / "curves.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["agent", "seed", "measurements", f"best_{metric}", "feasible"])
        for run in seed_runs:
            writer.writerows([run.agent, run.seed, step, value if has_value(value) else "", int(has_value(value))]
                             for step, value in enumerate(run.curve, start=1))
    with open(out_dir / "curves_summary.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["agent", "measurements", "seeds", "feasible_share", f"mean_best_{metric}", "min", "max",
                         "none_counts_as"])
        for agent in dict.fromkeys(run.agent for run in seed_runs):
            curves = [run.curve for run in seed_runs if run.agent == agent]
            band = seed_band(curves, none)
            writer.writerows([agent, step + 1, len(curves), band.feasible_share[step],
                              *(shown(value, ".6g") for value in (band.mean[step], band.low[step], band.high[step],
                                                                   none))]
                             for step in range(len(band.mean)))


def compare_table(report: dict[str, Any]) -> str:
    """The per-agent summary as text."""
    budget = report["budget"]
    none = shown(report.get("none_counts_as"), ".4g")
    rows = [[row["agent"], f"{row['reached']}/{row['seeds']}",
             f"{row['to95_mean']:.1f}" + ("" if row["reached"] == row["seeds"] else f" (≥, unreached = {budget + 1})"),
             f"{row['to95_min']}-{row['to95_max']}", f"{row['feasible_seeds']}/{row['seeds']}",
             shown(row["final_mean"], ".1f"), shown(row["regret_mean"], ".3f")]
            for row in report["agents"]]
    return "\n".join([
        table(["agent", "reached 95%", "measurements to 95% (mean)", "min-max", "seeds feasible",
               f"final best {report['metric']}", "regret (log)"], rows),
        f"final best: mean over every seed, a seed with no feasible config counted as {none}; "
        f"regret: over the seeds with one"])
