"""``infertune``: the command line, a thin composition root over tasks, spaces and the Evaluator."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import NoReturn

from tuner.errors import ConfigError, UserError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _runs_dir(args: argparse.Namespace) -> Path:
    return Path(args.runs_dir or os.environ.get("INFERTUNE_RUNS_DIR", "runs"))


def _sweep(task_space, assignments: list[str]) -> list[dict]:
    """Expand ``--set knob=v1,v2`` pairs into the cartesian product of configs."""
    choices: dict[str, list[str]] = {}
    for assignment in assignments:
        name, sep, values = assignment.partition("=")
        if not sep or not name.strip():
            raise ConfigError("expected knob=value", source="--set", value=assignment)
        if name.strip() not in task_space.names:
            raise ConfigError(f"unknown knob; known: {', '.join(task_space.names)}", source="--set",
                              field=name.strip(), value=assignment)
        choices[name.strip()] = [value for value in values.split(",") if value.strip()] or [values]
    names = list(choices)
    return [dict(zip(names, values, strict=True)) for values in itertools.product(*choices.values())]


def cmd_measure(args: argparse.Namespace) -> int:
    """Measure one or more configs of a task and print them as a table (or JSON lines)."""
    from tuner.evaluator import Evaluator
    from tuner.report import failure_lines, records_table
    from tuner.task import load_task

    task = load_task(args.env)
    configs = [task.space.complete(partial, source="--set") for partial in _sweep(task.space, args.set)]
    run = args.run or f"measure-{task.id}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"
    run_dir = _runs_dir(args) / run
    records = []
    with Evaluator(task, run_dir, use_cache=not args.no_cache, echo_worker=args.verbose) as evaluator:
        for position, config in enumerate(configs, start=1):
            shown = " ".join(f"{name}={value}" for name, value in config.items())
            print(f"[{position}/{len(configs)}] measuring {shown}", file=sys.stderr, flush=True)
            record = evaluator.evaluate(config)
            records.append(record)
            print(f"[{position}/{len(configs)}] {record.status}"
                  f"{' (cached)' if record.cached else ''} in {record.duration_s:.1f} s", file=sys.stderr, flush=True)
    if args.json:
        for record in records:
            print(json.dumps(record.to_dict()))
    else:
        varying = [name for name in task.space.names if len({str(c[name]) for c in configs}) > 1] or task.space.names
        print(records_table(records, varying))
        for line in failure_lines(records):
            print(line)
        print(f"records: {evaluator.records_path}")
    return 0 if all(record.status in ("ok", "unstable", "infeasible") for record in records) else 1


def cmd_spaces_show(args: argparse.Namespace) -> int:
    """Print a search space's knobs and constraints."""
    from tuner.report import space_table
    from tuner.space import find_space, load_space

    print(space_table(load_space(find_space(args.name))))
    return 0


def cmd_envs_list(args: argparse.Namespace) -> int:
    """List the task specs in the envs folder, with their Gymnasium ids."""
    from tuner.report import table
    from tuner.task import load_task

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


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = _Parser(prog="infertune", description="Find the best inference config by measuring real runs.")
    parser.add_argument("--runs-dir", help="where runs, the measurement cache and converted models live "
                                           "(default: $INFERTUNE_RUNS_DIR or ./runs)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    measure = commands.add_parser("measure", help="measure configs of a task for real")
    measure.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    measure.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE[,VALUE...]",
                         help="set a knob (repeatable; comma-separated values measure each)")
    measure.add_argument("--json", action="store_true", help="print each record as one JSON line")
    measure.add_argument("--no-cache", action="store_true", help="measure even when a cached result exists")
    measure.add_argument("--run", help="run name (default: measure-<task>-<time>); an existing run is appended to")
    measure.add_argument("-v", "--verbose", action="store_true", help="echo the worker's log")
    measure.set_defaults(handler=cmd_measure)

    spaces = commands.add_parser("spaces", help="search spaces").add_subparsers(dest="action", required=True,
                                                                               parser_class=_Parser)
    show = spaces.add_parser("show", help="print a search space")
    show.add_argument("name", help="space id (search_spaces/<id>.yaml) or path")
    show.set_defaults(handler=cmd_spaces_show)

    envs = commands.add_parser("envs", help="task specs").add_subparsers(dest="action", required=True,
                                                                        parser_class=_Parser)
    listing = envs.add_parser("list", help="list task specs and their Gymnasium ids")
    listing.add_argument("--envs-dir", default="envs")
    listing.set_defaults(handler=cmd_envs_list)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point: run a subcommand; user errors print one line and exit 2."""
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except UserError as error:
        print(f"infertune: error: {error}", file=sys.stderr)
        return UserError.exit_code
    except KeyboardInterrupt:
        print("infertune: interrupted; every finished measurement is in records.jsonl", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
