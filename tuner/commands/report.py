"""``infertune report``: a run's self-contained report.html and report.md, attached to MLflow."""

from __future__ import annotations

import argparse

from tuner.commands.common import open_run, runs_folder


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``report`` subcommand's arguments, bound to its handler."""
    report = commands.add_parser("report", help="write a run's report.html (self-contained) and report.md, and "
                                 "attach them to its MLflow run")
    report.add_argument("run", help="run folder name under runs/")
    report.add_argument("--no-mlflow", action="store_true", help="do not attach the report to MLflow")
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    """Write a run's report.html and report.md and attach them to its MLflow run."""
    from tuner.results.report import write_report

    run = open_run(args, args.run)
    reports = write_report(run)
    print("\n".join(f"wrote {path}" for path in reports))
    if not args.no_mlflow:
        from tuner.tracking import resolve_tracking_uri
        from tuner.tracking.ui_links import attach_to_run

        uri = resolve_tracking_uri(args.tracking_uri, runs_folder(args))
        if attach_to_run(uri, run.name, reports):
            print(f"attached to the MLflow run {run.name}")
        else:
            print(f"no MLflow run {run.name} to attach them to (infertune sync {run.name} uploads the run)")
    return 0
