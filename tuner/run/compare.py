"""Compare agents honestly: same task, same evaluator, same budget, several seeds, a fresh cache per run.

Runs every agent on every seed, then writes compare.json, compare.csv, the curves and their plot
(the figures themselves are worked out in ``tuner.results.comparison``).
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from tuner.agents import Agent
from tuner.records import Record, finite_or_null
from tuner.results.comparison import SeedRun, best_known, best_so_far, summarize, write_curves
from tuner.results.curves import none_value
from tuner.results.plots import best_so_far_plot
from tuner.results.report import write_report
from tuner.results.run_folder import read_run
from tuner.run.tune import run_tune
from tuner.task import TaskSpec
from tuner.tracking.base import Tracker
from tuner.util.formatting import shown


class _TrialsOnly(Tracker):
    """Forwards every seed run's trials to the compare invocation's parent run; that run ends once, at the end.

    Per-seed bests are not deployables of the comparison, and files belong to its parent run, attached once at
    the end: those calls stay no-ops.
    """

    def __init__(self, tracker: Tracker):
        self.tracker = tracker

    def log_record(self, record: Record) -> Any:
        return self.tracker.log_record(record)

    def log_training(self, metrics: dict[str, float], step: int) -> None:
        self.tracker.log_training(metrics, step)

    def run_id_of(self, record: Record) -> str | None:
        return self.tracker.run_id_of(record)


def run_compare(task: TaskSpec, agents: Sequence[Callable[[], Agent]], *, budget: int, seeds: Sequence[int],
                out_dir: Path, progress: Callable[[str], None] = print,
                tracker: Tracker | None = None, time_s: float | None = None) -> dict[str, Any]:
    """Run every agent on every seed (each with its own cache), then write compare.csv, curves.csv, PNG.

    ``time_s``: a wall-clock budget for each agent run (seed), beside ``budget``.
    """
    metric = task.objective.metric
    started = time.time()
    seed_runs: list[SeedRun] = []
    all_records: list[list[Record]] = []
    for make in agents:
        for seed in seeds:
            agent = make()
            run_dir = out_dir / f"{agent.name}-seed{seed}"
            result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=run_dir / "cache",
                              out=None, plot=False, tracker=_TrialsOnly(tracker) if tracker else None, time_s=time_s,
                              confirm=0)  # the searches are compared, measurement for measurement: no race
            all_records.append(result.records)
            curve = best_so_far(result.records, result.spent_after, budget, metric,
                                task.objective.direction == "maximize")
            seed_runs.append(SeedRun(agent.name, seed, curve, run_dir))
            stopped = result.summary["stop_reason"]
            progress(f"{agent.name} seed {seed}: best {metric} {shown(curve[-1], '.1f')} after "
                     f"{result.summary['measurements']} measurements" + (f" ({stopped})" if stopped else ""))
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
    report = {"task": task.id, "budget": budget, "time_budget_s": time_s, "seeds": list(seeds), "metric": metric,
              "best_known": reference,
              "none_counts_as": none_value([run.curve for run in seed_runs], task.objective.direction == "maximize"),
              "task_file": str(task.source.resolve()), "duration_s": time.time() - started, "agents": rows}
    (out_dir / "compare.json").write_text(json.dumps(finite_or_null(report), indent=2, allow_nan=False))
    reports = write_report(read_run(out_dir))
    if tracker is not None:
        tracker.attach(reports)
        tracker.finish(None)
    return report
