"""One tuning run: an agent spends a budget through a TuningSession; summary.json, records.jsonl, pareto.png."""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from tuner.agents import Agent
from tuner.evaluation.evaluator import Evaluator, may_reuse_compiles
from tuner.evaluation.racing import CONFIRMATIONS, contenders, race
from tuner.evaluation.resume import Journal
from tuner.evaluation.session import BudgetExhausted, TuningSession
from tuner.export import TARGETS, ExportContext, export_to
from tuner.measure.contention import QuietRule
from tuner.measure.early_stop import PRUNE_BELOW
from tuner.records import Record
from tuner.results.pareto import front_metrics, pareto_front
from tuner.results.plots import pareto_plot
from tuner.results.report import write_report
from tuner.results.run_folder import read_run
from tuner.results.show import certainty_lines, cost_lines
from tuner.results.tables import figures_text, pareto_table, trial_line
from tuner.run.progress import TrialProgress
from tuner.task import TaskSpec
from tuner.tracking.base import Tracker
from tuner.util.formatting import config_text

RESERVED_FOR_RACE = 1  # measurements of a time budget the search leaves for confirming the winner
RUN_SETTINGS = "run.json"  # what --resume needs to restart the same search
INPUTS = "inputs"  # run.json's key for the SHA-256 of the files that define the task, which --resume compares
FRONT_LABELS = {"tokens_per_s": "tokens/s", "latency_p95_s": "latency p95", "top1_agree": "top1_agree",
                "peak_mem_mb": "memory"}


@dataclass
class TuneResult:
    """What a run produced: its folder, summary, every record, the Pareto front."""

    run_dir: Path
    summary: dict[str, Any]
    records: list[Record]
    spent_after: list[int]
    front: list[Record]
    best: Record | None


def _sha256(path: Path) -> str:
    """The SHA-256 of a file's bytes, read in chunks (a recording can be large)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def input_files(task: TaskSpec) -> dict[str, Path]:
    """The files whose contents define the task: the task file, its search space and, when replayed, its recording."""
    files = {"task file": task.source, "search space": Path(task.space.source)}
    if task.recording is not None:
        files["recording"] = task.recording
    return files


def input_hashes(task: TaskSpec) -> dict[str, str]:
    """SHA-256 of each of the task's input files, keyed as ``input_files`` names them."""
    return {what: _sha256(path) for what, path in input_files(task).items()}


def changed_inputs(saved: dict[str, str], task: TaskSpec) -> list[str]:
    """The input files that differ from the hashes a run saved ('search space search_spaces/x.yaml', ...)."""
    files, now = input_files(task), input_hashes(task)
    names = [*now, *(what for what in saved if what not in now)]
    return [f"{what} {files[what]}" if what in files else what for what in names if saved.get(what) != now.get(what)]


def _record_brief(record: Record) -> dict[str, Any]:
    return {"run": record.run, "trial": record.trial, "config": record.config, "status": record.status,
            "metrics": record.metrics, "objective": record.objective, "cached": record.cached}


def run_tune(task: TaskSpec, agent: Agent, *, budget: int, seed: int, run_dir: Path, cache_dir: Path | None = None,
             out: TextIO | None = sys.stdout, plot: bool = True, tracker: Tracker | None = None,
             journal: Journal | None = None, settings: dict[str, Any] | None = None, time_s: float | None = None,
             time_used_s: float = 0.0, clock: Callable[[], float] = time.monotonic,
             prune_below: float | None = PRUNE_BELOW, confirm: int = CONFIRMATIONS) -> TuneResult:
    """Run ``agent`` on ``task`` for ``budget`` measurements and write the run's files.

    ``journal`` holds an interrupted attempt's records (resume); ``settings`` are saved to run.json first,
    so that ``--resume`` can restart the same agent with the same seed. ``time_s``: a wall-clock budget in
    seconds counted on ``clock`` from now (the worker's start included), less ``time_used_s`` already used.
    ``prune_below``: early stop inside a measurement (``Evaluator``; None: every config measured whole).
    ``confirm``: measurements, beyond the budget, that race the best configs before the winner is named (0: none;
    a live transformers task only: a recording answers the same figures again).
    """
    started, clock_start = time.time(), clock()
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_atomically(run_dir / RUN_SETTINGS, json.dumps(settings or {**agent.describe(), "task": task.id,
                                                                       "budget": budget, "time_s": time_s,
                                                                       "seed": seed}, indent=2))

    def progress(session: TuningSession, record: Record) -> None:
        if tracker is not None:
            tracker.log_record(record)
        if out is not None:
            resumed = " [from the interrupted run]" if session.last_resumed else ""
            print(trial_line(session.spent, session.budget, record, session.best) + resumed, file=out, flush=True)

    racing = confirm > 0 and task.backend == "hf"
    with Evaluator(task, run_dir, agent=agent.name, cache_dir=cache_dir, prune_below=prune_below,
                   quiet=QuietRule.from_environment(), compile_cache=may_reuse_compiles(task)) as evaluator:
        session = TuningSession(evaluator, budget, on_record=progress, journal=journal,
                                on_training=tracker.log_training if tracker is not None else None,
                                time_s=time_s, time_used_s=time_used_s, clock=clock, started=clock_start)
        session.reserve = min(confirm, RESERVED_FOR_RACE) if racing else 0
        if out is not None and task.backend != "replay":  # a replayed config is read back at once: nothing to show
            evaluator.observer = TrialProgress(out, budget, lambda: session.spent, time_left=session.time_left)
        with contextlib.suppress(BudgetExhausted):  # asked past the end (a measurement the time left does not fit)
            agent.search(session, seed)
        race_summary = _race(session, confirm, out) if racing else None
    front = pareto_front(session.records)  # a config once: its first measurement
    best = session.best
    summary = {
        "run": run_dir.name, "task": task.id, "task_file": str(task.source.resolve()),
        "space": task.space.label, "agent": agent.describe(), "seed": seed,
        "metric": task.objective.metric, "direction": task.objective.direction,
        "budget": budget, "measurements": session.spent, "trials": len(session.records),
        "resumed_records": session.journal.resumed, "time_budget_s": time_s, "stop_reason": session.stop_reason,
        "confirmations": session.confirmations, "race": race_summary,
        "best": _record_brief(best) if best else None,
        "pareto": [_record_brief(record) for record in front],
        "records": str(run_dir / "records.jsonl"), "fingerprint": session.evaluator.fingerprint,
        "duration_s": time.time() - started,
    }
    _write_atomically(run_dir / "summary.json", json.dumps(summary, indent=2))
    write_trials_csv(session.records, run_dir / "trials.csv")
    if plot:
        pareto_plot(session.records, front, run_dir / "pareto.png",
                    f"{task.id}: {agent.name}, {session.spent} measurements")
    if best is not None:
        mlflow_id = tracker.run_id_of(best) if tracker is not None else None
        export_to(list(TARGETS), best.config, export_context(task, best, run_dir.parent, mlflow_id), run_dir / "export")
    reports = write_report(read_run(run_dir)) if plot else []
    if tracker is not None:
        if best is not None:
            tracker.mark_deployable(best, deployable_artifacts(run_dir))
        tracker.attach(reports)
        tracker.finish(summary)
    return TuneResult(run_dir, summary, session.records, session.spent_after, front, best)


def _race(session: TuningSession, confirm: int, out: TextIO | None) -> dict[str, Any] | None:
    """Confirm the winner: race the best configs (``evaluation.racing``); what the race did, for summary.json."""
    objective = session.evaluator.task.objective
    throughput = objective.metric == "tokens_per_s" and objective.direction == "maximize"
    entrants = contenders(session.records)
    if not entrants:
        return None
    if out is not None:
        print(f"confirming the winner: measuring the best {len(entrants)} configs again, in turn, until their 95% "
              f"intervals of tokens/s separate (at most {confirm} measurements)", file=out, flush=True)
    outcome = race(session.records, lambda item: session.confirm(item.config, item.records[0].trial), confirm,
                   throughput=throughput)
    rows = [{"config": item.config, "trials": [record.trial for record in item.records], "score": item.score,
             "tokens_per_s_ci95": [item.estimate.low, item.estimate.high] if item.estimate else None}
            for item in outcome.contenders]
    if out is not None:
        print(f"race ended: {outcome.ended} ({outcome.measurements} measurements)", file=out, flush=True)
    return {"measurements": outcome.measurements, "ended": outcome.ended, "contenders": rows}


def _write_atomically(path: Path, text: str) -> None:
    staging = path.with_name(f".{path.name}.tmp")
    staging.write_text(text)
    os.replace(staging, path)


def deployable_artifacts(run_dir: Path) -> list[Path]:
    """What the best trial's MLflow run carries: exported files, Pareto plot, trial table, summary."""
    return [run_dir / "export", run_dir / "pareto.png", run_dir / "trials.csv", run_dir / "summary.json"]


def export_context(task: TaskSpec, record: Record, runs_dir: Path,
                   mlflow_run_id: str | None = None) -> ExportContext:
    """What an exported file says about where its config came from."""
    from tuner.task import ServingWorkload

    model, note = serving_model(task, runs_dir)
    load = task.workload if isinstance(task.workload, ServingWorkload) else None  # the load it was measured at
    return ExportContext(task=task.id, model=model, metrics=record.metrics, run=record.run, trial=record.trial,
                         mlflow_run_id=mlflow_run_id, model_note=note, attention_heads=attention_heads(task, runs_dir),
                         # what the record was measured at, before what the task file says today
                         load=record.info.get("load") or (load.load if load else None),
                         slo=record.info.get("slo") or (load.slo if load else None))


def attention_heads(task: TaskSpec, runs_dir: Path) -> int | None:
    """The model's attention head count where it is known without a download (serving stacks split by it)."""
    from tuner.measure.backends.model_store import TINY_DEFAULTS, converted_gguf_folder

    model = task.model
    if task.backend == "replay":
        return None
    if "tiny" in model:
        return int({**TINY_DEFAULTS, **model["tiny"]}["num_attention_heads"])
    folder = converted_gguf_folder(Path(model["gguf"]), runs_dir) if "gguf" in model else Path(model.get("path", ""))
    config = folder / "config.json"
    if "hf_id" in model or not config.is_file():
        return None
    return json.loads(config.read_text()).get("num_attention_heads")


def serving_model(task: TaskSpec, runs_dir: Path) -> tuple[str, str]:
    """(what a serving stack should load, a note) for the task's model."""
    model = task.model
    if task.backend == "replay":
        name = str(model.get("name") or task.id)
        return name, f"model: {name} as measured in {task.recording.name}; point this at that checkpoint"
    if "hf_id" in model:
        return str(model["hf_id"]), ""
    if "path" in model:
        return str(model["path"]), ""
    if "gguf" in model:
        from tuner.measure.backends.model_store import converted_gguf_folder

        folder = converted_gguf_folder(Path(model["gguf"]), runs_dir)
        return str(folder), f"model: safetensors converted by infertune from {Path(model['gguf']).name}"
    name = str(model.get("name") or task.id)
    return name, f"model: {name} exists only inside infertune (random weights); put your checkpoint here"


def write_trials_csv(records: list[Record], path: Path) -> Path:
    """The trial table: one row per record, config knobs then metrics."""
    knobs = list(dict.fromkeys(name for record in records for name in record.config))
    metrics = list(dict.fromkeys(name for record in records for name in record.metrics))
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["trial", *knobs, "status", "cached", "feasible", "objective", *metrics])
        for record in records:
            writer.writerow([record.trial, *(record.config.get(name) for name in knobs), record.status,
                             record.cached, record.feasible, f"{record.objective:.6g}",
                             *(record.metrics.get(name) for name in metrics)])
    return path


def final_report(result: TuneResult, task: TaskSpec) -> str:
    """The text printed at the end of ``tune``: the best deployable config and the Pareto front."""
    lines = [""]
    run = read_run(result.run_dir)
    lines += cost_lines(run)
    if result.best is None:
        lines.append("no deployable config: nothing measured with stable timing inside the objective's constraints")
    else:
        best = result.best
        lines.append(f"best deployable config (trial {best.trial}, objective {best.objective:.3f}):")
        lines.append(f"  {config_text(best.config)}")
        lines.append(f"  {figures_text(best)}")
        lines += ["how sure:", *(f"  {line}" for line in certainty_lines(best, result.records))]
    if result.front:
        varying = [name for name in task.space.names
                   if len({str(record.config.get(name)) for record in result.front}) > 1]
        weighed = [name for name, _ in front_metrics(result.records)]
        left_out = [FRONT_LABELS[name] for name in FRONT_LABELS if name not in weighed]
        lines += ["", f"Pareto front ({', '.join(FRONT_LABELS[name] for name in weighed)}"
                  + (f"; {', '.join(left_out)} n/a for some config, not weighed" if left_out else "") + "):",
                  pareto_table(result.front, varying)]
    lines += ["", f"run folder: {result.run_dir} (report.html, summary.json, records.jsonl, pareto.png)"]
    return "\n".join(lines)
