"""``infertune export``, ``sync`` and ``ui``: take results to serving stacks and to MLflow."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.commands.common import mlflow_mirror, runs_folder, task_file_of
from tuner.util.errors import ConfigError
from tuner.util.text_file import read_json_object

if TYPE_CHECKING:
    from tuner.records import Record


def cmd_export(args: argparse.Namespace) -> int:
    """Write the serving-stack files for a run's best config, a trial, or the best ever measured for a task."""
    from tuner.export import TARGETS, export_to
    from tuner.results.tables import metric_text, serving
    from tuner.run.tune import export_context
    from tuner.task import load_task

    targets = list(TARGETS) if args.to == "all" else [args.to]
    if args.to != "all" and args.to not in TARGETS:
        raise ConfigError(f"unknown export target; known: {', '.join(TARGETS)}, all", field="--to", value=args.to)
    runs = runs_folder(args)
    if args.best:
        task = load_task(args.best)
        record = _best_record(runs, task.id)
        mlflow_id = None
    else:
        record, task, mlflow_id = _record_for_run(args, runs, args.run_id)
    out_dir = Path(args.out) if args.out else runs / "export" / f"{task.id}-{record.run}-trial{record.trial}"
    paths, warnings = export_to(targets, record.config, export_context(task, record, runs, mlflow_id), out_dir)
    for warning in warnings:
        print(f"infertune: warning: {warning}", file=sys.stderr)
    figure = (f"goodput {metric_text(record, 'goodput_rps', '.2f')} req/s" if serving(record)
              else f"{metric_text(record, 'tokens_per_s', '.1f')} tok/s")
    print(f"exported trial {record.trial} of {record.run} ({figure}):")
    for path in paths:
        print(f"  {path}")
    return 0


def _best_record(folder: Path, task_id: str | None):
    """The best rankable record under ``folder`` (of ``task_id``, when given)."""
    from tuner.evaluation.session import rankable
    from tuner.records import read_records

    candidates = [record for path in folder.glob("**/records.jsonl") for record in read_records(path)
                  if (task_id is None or record.task == task_id) and rankable(record)]
    if not candidates:
        raise ConfigError("no deployable record (status ok, inside the objective's bounds) there", source=str(folder),
                          field="--best" if task_id else "RUN_ID", value=task_id or folder.name)
    return max(candidates, key=lambda record: record.objective)


def _record_for_run(args: argparse.Namespace, runs: Path, run_id: str):
    """(record, task, MLflow run id) for an infertune run name (its best) or an MLflow run id."""
    from tuner.records import read_records
    from tuner.task import load_task
    from tuner.util.names import is_name

    run_dir = runs / run_id
    if is_name(run_id) and (run_dir / "records.jsonl").is_file():  # else an MLflow run id, never a path
        best = _best_record(run_dir, None)
        return best, load_task(task_file_of(args, run_dir, best.task)), None
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.lookup import find_trial

    found = find_trial(resolve_tracking_uri(args.tracking_uri, runs), run_id)
    if found is None:
        raise ConfigError("neither a run folder nor an MLflow run id", source=str(runs), field="RUN_ID", value=run_id)
    run_name, trial, task_file, mlflow_id = found
    record = next((r for r in read_records(runs / run_name / "records.jsonl") if r.trial == trial), None)
    if record is None:
        raise ConfigError("the MLflow run points at a record that is not on this machine", source=str(runs / run_name),
                          field="trial", value=trial)
    return record, load_task(task_file_of(args, runs / run_name, record.task) if not task_file
                             or not Path(task_file).is_file() else task_file), mlflow_id


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload a run's records to MLflow; what is there already is skipped, so it never duplicates."""
    from tuner.records import read_records
    from tuner.run.tune import deployable_artifacts
    from tuner.task import load_task
    from tuner.util.names import checked_name

    run_dir = runs_folder(args) / checked_name(args.run, "RUN")
    files = [run_dir / "records.jsonl", *sorted(run_dir.glob("*/records.jsonl"))]
    records = [record for path in files for record in read_records(path)]
    if not records:
        raise ConfigError("no records.jsonl there", source=str(run_dir), field="RUN", value=args.run)
    summary_path = run_dir / "summary.json"
    summary = read_json_object(summary_path) or {}
    task = load_task(task_file_of(args, run_dir, records[0].task))
    agent = summary.get("agent")
    agent = agent if isinstance(agent, dict) else {"agent": records[0].agent}  # a damaged summary: what records say
    tracker = mlflow_mirror(args, task, run_dir.name, {**agent, "budget": summary.get("budget", "")})
    if tracker.parent_id is None:
        return 1
    before = len(tracker.trial_runs)
    for record in records:
        tracker.log_record(record)
    from tuner.evaluation.session import best_record  # not at start-up: the session pulls in the evaluator

    best = _summary_best(records, summary) or best_record(records)
    if best is not None:
        tracker.mark_deployable(best, deployable_artifacts(run_dir))
    tracker.finish(summary or None)
    added = len(tracker.trial_runs) - before
    print(f"synced {run_dir.name}: {added} trial runs added, {before} already in MLflow, "
          f"{tracker.failures} failed uploads ({tracker.tracking_uri})")
    return 0 if tracker.failures == 0 else 1


def _summary_best(records: list[Record], summary: dict[str, Any]) -> Record | None:
    """The record summary.json calls best; with ``--envs N`` it lives in env<i>/, so match it by content."""
    best = summary.get("best")
    if not isinstance(best, dict):
        return None
    keys = ("trial", "config", "status", "objective", "cached")
    matches = [record for record in records if all(getattr(record, key) == best.get(key) for key in keys)]
    named = [record for record in matches if record.run == best.get("run", record.run)]
    return (named or matches or [None])[0]


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI on the embedded store; print direct links to each experiment's runs and to ``--run``."""
    from mlflow.tracking import MlflowClient

    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.ui_links import experiment_links, run_links

    uri = resolve_tracking_uri(args.tracking_uri, runs_folder(args))
    if not uri.startswith("sqlite:"):
        raise ConfigError("the UI serves the embedded SQLite store; open the tracking server itself",
                          field="--tracking-uri", value=uri)
    base = f"http://{args.host}:{args.port}"
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # not the store's set-up chatter before the links
    client = MlflowClient(tracking_uri=uri)
    if args.run:
        links = run_links(client, base, args.run)
        if not links:
            raise ConfigError("no infertune run of that name in the MLflow store (infertune runs lists the runs; "
                              "infertune sync RUN uploads one)", field="--run", value=args.run)
        print(f"MLflow UI for run {args.run}:")
        for label, link in links:
            print(f"  {label}: {link}")
    else:
        links = experiment_links(client, base)
        print("MLflow UI, the runs of each task:" if links else "MLflow UI: no runs logged yet")
        for name, link, count in links:
            print(f"  {name} ({count} runs): {link}")
    if args.links_only:
        return 0
    print(f"serving {uri} on {base}; Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    os.execv(sys.executable, command)
    return 0
