"""``infertune sync``: upload a run to MLflow later, without duplicates."""

from __future__ import annotations

import argparse
from typing import Any

from tuner.commands.common import mlflow_mirror, runs_folder, task_file_of
from tuner.records import Record
from tuner.util.errors import ConfigError
from tuner.util.names import checked_name
from tuner.util.text_file import read_json_object


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``sync`` subcommand's arguments, bound to its handler."""
    sync = commands.add_parser("sync", help="upload a run to MLflow later (no duplicates)")
    sync.add_argument("run", help="run folder name under runs/")
    sync.add_argument("--envs-dir", default="envs", help="where to find the task file if the run does not say")
    sync.set_defaults(handler=cmd_sync)


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload a run's records to MLflow; what is there already is skipped, so it never duplicates."""
    from tuner.records import read_records
    from tuner.run.tune import deployable_artifacts
    from tuner.task import load_task

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
