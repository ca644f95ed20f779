"""``infertune runs``, ``show`` and ``report``: find runs again and see what they found."""

from __future__ import annotations

import argparse

from tuner.commands.common import runs_folder
from tuner.results.run_folder import RunFolder, is_run, list_runs, read_run
from tuner.util.errors import ConfigError
from tuner.util.names import is_name


def cmd_runs(args: argparse.Namespace) -> int:
    """Print a table of the runs under the runs folder, newest first."""
    from tuner.results.show import runs_table

    runs = list_runs(runs_folder(args))
    if not runs:
        print(f"no runs under {runs_folder(args)}")
        return 0
    print(runs_table(runs))
    return 0


def open_run(args: argparse.Namespace, name: str) -> RunFolder:
    """The run ``name`` under the runs folder; a one-line error when there is none."""
    folder = runs_folder(args) / name
    if not is_name(name) or not is_run(folder):  # a name, never a path out of the runs folder
        raise ConfigError(f"no run of that name under {runs_folder(args)} (infertune runs lists them)", field="RUN",
                          value=name)
    return read_run(folder)


def cmd_show(args: argparse.Namespace) -> int:
    """Print a run's best config, how sure it is and what it cost."""
    from tuner.results.show import show_text

    print(show_text(open_run(args, args.run)))
    return 0


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
