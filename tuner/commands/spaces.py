"""``infertune spaces show``: a search space's knobs and constraints."""

from __future__ import annotations

import argparse

from tuner.commands.common import add_group


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``spaces`` subcommand's arguments, bound to its handler."""
    spaces = add_group(commands, "spaces", "search spaces")
    show = spaces.add_parser("show", help="print a search space")
    show.add_argument("name", help="space id (search_spaces/<id>.yaml) or path")
    show.set_defaults(handler=cmd_spaces_show)


def cmd_spaces_show(args: argparse.Namespace) -> int:
    """Print a search space's knobs and constraints."""
    from tuner.results.tables import space_table
    from tuner.space import find_space, load_space

    print(space_table(load_space(find_space(args.name))))
    return 0
