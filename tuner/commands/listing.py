"""``infertune spaces show`` and ``infertune envs list``."""

from __future__ import annotations

import argparse
from pathlib import Path

from tuner.util.errors import ConfigError, UserError


def cmd_spaces_show(args: argparse.Namespace) -> int:
    """Print a search space's knobs and constraints."""
    from tuner.results.tables import space_table
    from tuner.space import find_space, load_space

    print(space_table(load_space(find_space(args.name))))
    return 0


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
