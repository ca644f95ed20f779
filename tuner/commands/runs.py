"""``infertune runs``: the runs under the runs folder, newest first."""

from __future__ import annotations

import argparse

from tuner.commands.common import runs_folder
from tuner.results.run_folder import list_runs


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``runs`` subcommand's arguments, bound to its handler."""
    runs = commands.add_parser("runs", help="list the runs under the runs folder: task, agent, budget, best, state")
    runs.set_defaults(handler=cmd_runs)


def cmd_runs(args: argparse.Namespace) -> int:
    """Print a table of the runs under the runs folder, newest first."""
    from tuner.results.show import runs_table

    runs = list_runs(runs_folder(args))
    if not runs:
        print(f"no runs under {runs_folder(args)}")
        return 0
    print(runs_table(runs))
    return 0
