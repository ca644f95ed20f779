"""``infertune measure``: measure configs of a task for real, one record each."""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path
from typing import Any

from tuner.commands.common import mlflow_mirror, run_name, runs_folder
from tuner.run.lock import hold_run
from tuner.space import SearchSpace
from tuner.util.errors import ConfigError
from tuner.util.text_file import read_text


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``measure`` subcommand's arguments, bound to its handler."""
    measure = commands.add_parser("measure", help="measure configs of a task for real")
    measure.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    measure.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE[,VALUE...]",
                         help="set a knob (repeatable; comma-separated values measure each)")
    measure.add_argument("--grid", action="store_true", help="every config of the task's space its constraints allow "
                                                             "(knobs given with --set sweep only those values)")
    measure.add_argument("--json", action="store_true", help="print each record as one JSON line")
    measure.add_argument("--no-cache", action="store_true", help="measure even when a cached result exists")
    measure.add_argument("--run", help="run name (default: measure-<task>-<time>); an existing run is appended to")
    measure.add_argument("--config", help="a JSON config to start from (e.g. an `export --to hf` file)")
    measure.add_argument("-v", "--verbose", action="store_true", help="echo the worker's log")
    measure.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    measure.set_defaults(handler=cmd_measure)


def _read_config_file(path: str) -> dict[str, Any]:
    """A config from a JSON file: an ``infertune export --to hf`` file or a plain {knob: value} object."""
    from tuner.export.hf import KIND, config_from_export

    try:
        document = json.loads(read_text(Path(path)))
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read a JSON config: {str(error).splitlines()[0]}", source=path) from None
    if not isinstance(document, dict):
        raise ConfigError("a config file holds a JSON object", source=path)
    try:
        config = config_from_export(document) if document.get("kind") == KIND else document
    except ConfigError as error:
        raise ConfigError(error.detail, source=path, field=error.field, value=error.value) from None
    for name, value in config.items():
        if not isinstance(value, str | int | float | bool):
            raise ConfigError("a knob's value is a string, number or true/false", source=path, field=name,
                              value=value)
    return config


def _sweep(task_space: SearchSpace, assignments: list[str], grid: bool = False,
           fixed: dict[str, Any] | None = None) -> list[dict[str, str]]:
    """Expand ``--set knob=v1,v2`` pairs into the cartesian product of configs.

    ``grid``: every knob not set (nor ``fixed`` by a config file) sweeps all its choices, and configs the space's
    constraints rule out are left out (a landscape: every config of the space).
    """
    choices: dict[str, list[str]] = {}
    for assignment in assignments:
        name, sep, values = assignment.partition("=")
        if not sep or not name.strip():
            raise ConfigError("expected knob=value", source="--set", value=assignment)
        if name.strip() not in task_space.names:
            raise ConfigError(f"unknown knob; known: {', '.join(task_space.names)}", source="--set",
                              field=name.strip(), value=assignment)
        choices[name.strip()] = [value for value in values.split(",") if value.strip()] or [values]
    if grid:
        for knob in task_space.knobs:
            if knob.name not in (fixed or {}):
                choices.setdefault(knob.name, [str(choice) for choice in knob.choices])
    names = list(choices)
    configs = [dict(zip(names, values, strict=True)) for values in itertools.product(*choices.values())]
    if grid:
        configs = [config for config in configs
                   if not task_space.violations(task_space.complete({**(fixed or {}), **config}, "--set"))]
    return configs


def cmd_measure(args: argparse.Namespace) -> int:
    """Measure one or more configs of a task and print them as a table (or JSON lines)."""
    from tuner.evaluation.evaluator import Evaluator
    from tuner.results.tables import failure_lines, records_table
    from tuner.run.progress import TrialProgress
    from tuner.task import load_task

    task = load_task(args.env)
    base = _read_config_file(args.config) if args.config else {}
    if args.config:
        task.space.complete(base, source=args.config)  # one-line error for a knob or value the space lacks
    partials = _sweep(task.space, args.set, args.grid, base)
    configs = [task.space.complete({**base, **partial}, source="--set") for partial in partials]
    run_dir = runs_folder(args) / run_name(args, "measure", task.id)
    hold_run(run_dir, "--run")  # one process per run: records.jsonl gets no interleaved writers
    records = []
    tracker = mlflow_mirror(args, task, run_dir.name, {"agent": "measure", "configs": len(configs)})
    with Evaluator(task, run_dir, use_cache=not args.no_cache, echo_worker=args.verbose) as evaluator:
        position = 0
        if task.backend != "replay":  # where each measurement is under the line naming the config, on stderr
            evaluator.observer = TrialProgress(sys.stderr, len(configs), lambda: position - 1, announce=False)
        for position, config in enumerate(configs, start=1):
            shown = " ".join(f"{name}={value}" for name, value in config.items())
            print(f"[{position}/{len(configs)}] measuring {shown}", file=sys.stderr, flush=True)
            record = evaluator.evaluate(config)
            records.append(record)
            if tracker is not None:
                tracker.log_record(record)
            print(f"[{position}/{len(configs)}] {record.status}"
                  f"{' (cached)' if record.cached else ''} in {record.duration_s:.1f} s", file=sys.stderr, flush=True)
    if tracker is not None:
        tracker.finish()
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
