"""``infertune show``: a run's best config, how sure it is and what it cost."""

from __future__ import annotations

import argparse

from tuner.commands.common import open_run


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``show`` subcommand's arguments, bound to its handler."""
    show_run = commands.add_parser("show", help="a run's best config, how sure it is and what it cost")
    show_run.add_argument("run", help="run folder name under runs/ (infertune runs lists them)")
    show_run.set_defaults(handler=cmd_show)


def cmd_show(args: argparse.Namespace) -> int:
    """Print a run's best config, how sure it is and what it cost."""
    from tuner.results.show import show_text

    print(show_text(open_run(args, args.run)))
    return 0
