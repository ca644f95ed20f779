"""Compare agents honestly: same task, same evaluator, same budget, several seeds, a fresh cache per run.

Per agent: best-so-far objective metric against measurements (mean and min-max over seeds), measurements
needed to reach 95% of the best known feasible value, regret at the budget. Writes a table, CSV and PNG.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.agents import Agent
from tuner.curves import has_value, none_value, seed_band
from tuner.measure.backends.replay import read_recording
from tuner.objective import score
from tuner.plots import best_so_far_plot
from tuner.records import Record, finite_or_null
from tuner.report import known, shown, table
from tuner.run_folder import read_run
from tuner.run_report import write_report
from tuner.session import rankable
from tuner.task import TaskSpec
from tuner.tuning import Tracker, run_tune

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
                  if spent <= measurements and rankable(record) and known(record.metrics.get(metric))]
        curve.append((max(values) if maximize else min(values)) if values else math.nan)
    return curve


def best_known(task: TaskSpec, runs: Sequence[Sequence[Record]]) -> float:
    """Best feasible value of the objective's metric: over the recording (replay) and every compared run."""
    metric = task.objective.metric
    values = [record.metrics[metric] for records in runs for record in records
              if rankable(record) and known(record.metrics.get(metric))]
    if task.recording is not None:
        for row in read_recording(task.recording):
            value = (row.get("metrics") or {}).get(metric)
            reference = (row.get("info") or {}).get("reference_metrics")
            if row["status"] == "ok" and known(value) and score(task.objective, row["status"], row.get("metrics"),
                                                                 reference)[1]:
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


class _TrialsOnly:
    """Forwards every seed run's trials to the compare invocation's parent run; that run ends once, at the end."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def log_record(self, record: Record) -> Any:
        return self.tracker.log_record(record)

    def log_training(self, metrics: dict[str, float], step: int) -> None:
        self.tracker.log_training(metrics, step)

    def run_id_of(self, record: Record) -> str | None:
        return self.tracker.run_id_of(record)

    def mark_deployable(self, record: Record, artifacts: list[Path]) -> None:
        """Per-seed bests are not deployables of the comparison."""

    def attach(self, paths: list[Path]) -> None:
        """Files belong to the comparison's parent run, attached once at the end."""

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """The comparison finishes its parent run itself."""


def run_compare(task: TaskSpec, agents: Sequence[Callable[[], Agent]], *, budget: int, seeds: Sequence[int],
                out_dir: Path, progress: Callable[[str], None] = print,
                tracker: Tracker | None = None) -> dict[str, Any]:
    """Run every agent on every seed (each with its own cache), then write compare.csv, curves.csv, PNG."""
    metric = task.objective.metric
    started = time.time()
    seed_runs: list[SeedRun] = []
    all_records: list[list[Record]] = []
    for make in agents:
        for seed in seeds:
            agent = make()
            run_dir = out_dir / f"{agent.name}-seed{seed}"
            result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=run_dir / "cache",
                              out=None, plot=False, tracker=_TrialsOnly(tracker) if tracker else None)
            all_records.append(result.records)
            curve = best_so_far(result.records, result.spent_after, budget, metric,
                                task.objective.direction == "maximize")
            seed_runs.append(SeedRun(agent.name, seed, curve, run_dir))
            progress(f"{agent.name} seed {seed}: best {metric} {shown(curve[-1], '.1f')} after "
                     f"{result.summary['measurements']} measurements")
    reference = best_known(task, all_records)
    rows = summarize(task, seed_runs, reference)
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / "compare.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    write_curves(seed_runs, out_dir, metric, none_value([run.curve for run in seed_runs],
                                                         task.objective.direction == "maximize"))
    curves = {agent: [run.curve for run in seed_runs if run.agent == agent] for agent in dict.fromkeys(
        run.agent for run in seed_runs)}
    best_so_far_plot(curves, out_dir / "best_so_far.png", f"{task.id}: best {metric} so far, budget {budget}",
                     f"best {metric}", reference=reference, maximize=task.objective.direction == "maximize")
    report = {"task": task.id, "budget": budget, "seeds": list(seeds), "metric": metric, "best_known": reference,
              "none_counts_as": none_value([run.curve for run in seed_runs], task.objective.direction == "maximize"),
              "task_file": str(task.source.resolve()), "duration_s": time.time() - started, "agents": rows}
    (out_dir / "compare.json").write_text(json.dumps(finite_or_null(report), indent=2, allow_nan=False))
    reports = write_report(read_run(out_dir))
    if tracker is not None:
        tracker.attach(reports)
        tracker.finish(None)
    return report


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
