"""``infertune export``: serving-stack files for a run's best config, a trial, or a task's best ever."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuner.commands.common import runs_folder, task_file_of
from tuner.util.errors import ConfigError
from tuner.util.names import is_name


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``export`` subcommand's arguments, bound to its handler."""
    export = commands.add_parser("export", help="write serving-stack configs for a measured config")
    export.add_argument("run_id", nargs="?", help="a run folder name (its best config) or an MLflow run id")
    export.add_argument("--best", metavar="ENV", help="the best deployable config ever measured for this task")
    export.add_argument("--to", required=True, help="vllm, sglang, tgi, trtllm, hf or all")
    export.add_argument("--out", help="output folder (default: runs/export/<task>-<run>-trial<n>)")
    export.add_argument("--envs-dir", default="envs", help="where to find the task file if the run does not say")
    export.set_defaults(handler=cmd_export)


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
