"""``infertune envs list``: the task specs and their Gymnasium ids."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuner.commands.common import add_group
from tuner.util.errors import ConfigError, UserError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``envs`` subcommand's arguments, bound to its handler."""
    envs = add_group(commands, "envs", "task specs")
    listing = envs.add_parser("list", help="list task specs and their Gymnasium ids")
    listing.add_argument("--envs-dir", default="envs")
    listing.set_defaults(handler=cmd_envs_list)


def cmd_envs_list(args: argparse.Namespace) -> int:
    """List the task specs in the envs folder, with their Gymnasium ids."""
    from tuner.task import load_task
    from tuner.util.formatting import table

    folder = Path(args.envs_dir)
    if not folder.is_dir():
        raise ConfigError("folder not found", source=str(folder))
    rows = []
    for path in sorted(folder.glob("*.yaml")):
        try:
            task = load_task(path)
            model = task.model.get("name") or next(iter(task.model_identity.values()))
            rows.append([f"infertune/{task.id}-v0", str(path), model, task.device, task.space.label,
                         task.description])
        except UserError as error:
            rows.append([f"infertune/{path.stem}-v0", str(path), "-", "-", "-", f"INVALID: {error}"])
    print(table(["gym id", "file", "model", "device", "space", "description"], rows))
    return 0
