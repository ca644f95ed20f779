"""One tuning run: an agent spends a budget through a TuningSession; summary.json, records.jsonl, pareto.png."""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tuner.agents import Agent
from tuner.evaluator import Evaluator
from tuner.pareto import pareto_front
from tuner.plots import pareto_plot
from tuner.records import Record
from tuner.report import config_text, pareto_table, trial_line
from tuner.session import TuningSession
from tuner.task import TaskSpec


@dataclass
class TuneResult:
    """What a run produced: its folder, summary, every record, the Pareto front."""

    run_dir: Path
    summary: dict[str, Any]
    records: list[Record]
    spent_after: list[int]
    front: list[Record]
    best: Record | None


def _record_brief(record: Record) -> dict[str, Any]:
    return {"trial": record.trial, "config": record.config, "status": record.status, "metrics": record.metrics,
            "objective": record.objective, "cached": record.cached}


def run_tune(task: TaskSpec, agent: Agent, *, budget: int, seed: int, run_dir: Path, cache_dir: Path | None = None,
             out: TextIO | None = sys.stdout, plot: bool = True) -> TuneResult:
    """Run ``agent`` on ``task`` for ``budget`` measurements and write the run's files."""
    started = time.time()

    def progress(session: TuningSession, record: Record) -> None:
        if out is not None:
            print(trial_line(session.spent, session.budget, record, session.best), file=out, flush=True)

    with Evaluator(task, run_dir, agent=agent.name, cache_dir=cache_dir) as evaluator:
        session = TuningSession(evaluator, budget, on_record=progress)
        agent.search(session, seed)
    front = pareto_front(session.records)
    best = session.best
    summary = {
        "run": run_dir.name, "task": task.id, "space": task.space.label, "agent": agent.describe(), "seed": seed,
        "budget": budget, "measurements": session.spent, "trials": len(session.records),
        "best": _record_brief(best) if best else None,
        "pareto": [_record_brief(record) for record in front],
        "records": str(run_dir / "records.jsonl"), "fingerprint": session.evaluator.fingerprint,
        "duration_s": time.time() - started,
    }
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    if plot:
        pareto_plot(session.records, front, run_dir / "pareto.png",
                    f"{task.id}: {agent.name}, {session.spent} measurements")
    return TuneResult(run_dir, summary, session.records, session.spent_after, front, best)


def final_report(result: TuneResult, task: TaskSpec) -> str:
    """The text printed at the end of ``tune``: the best deployable config and the Pareto front."""
    lines = [""]
    summary = result.summary
    lines.append(f"{summary['measurements']} measurements, {summary['trials']} trials in "
                 f"{summary['duration_s']:.0f} s")
    if result.best is None:
        lines.append("no deployable config: nothing measured with stable timing inside the objective's constraints")
    else:
        best = result.best
        lines.append(f"best deployable config (trial {best.trial}, objective {best.objective:.3f}):")
        lines.append(f"  {config_text(best.config)}")
        lines.append(f"  {best.metrics['tokens_per_s']:.1f} tok/s, p95 {best.metrics['latency_p95_s']:.3f} s, "
                     f"top1 {best.metrics['top1_agree']:.3f}, kl {best.metrics['kl']:.2e}, "
                     f"{best.metrics['peak_mem_mb']:.0f} MB")
    if result.front:
        varying = [name for name in task.space.names
                   if len({str(record.config.get(name)) for record in result.front}) > 1]
        lines += ["", "Pareto front (tokens/s, latency p95, top1_agree, memory):",
                  pareto_table(result.front, varying)]
    lines += ["", f"run folder: {result.run_dir} (summary.json, records.jsonl, pareto.png)"]
    return "\n".join(lines)
