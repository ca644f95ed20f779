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
    run_dir = _runs_dir(args) / _run_name(args, "measure", task.id)
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


def _run_name(args: argparse.Namespace, kind: str, task_id: str) -> str:
    return args.run or f"{kind}-{task_id}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune a task with one agent and print the trials, the best config and the Pareto front."""
    from tuner.agents import make_agent
    from tuner.task import load_task
    from tuner.tuning import final_report, run_tune

    task = load_task(args.env)
    budget = task.budget if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError("must be a positive number of measurements", field="--budget", value=budget)
    seed = task.seed if args.seed is None else args.seed
    run_dir = _runs_dir(args) / _run_name(args, f"tune-{args.agent}", task.id)
    agent = make_agent(args.agent, sampler=args.sampler, pareto=args.pareto, storage=args.storage,
                       study_name=args.study, policy=args.policy)
    print(f"tuning {task.id} with {args.agent}: budget {budget} measurements, seed {seed}, run {run_dir.name}",
          flush=True)
    cache_dir = run_dir / "cache" if args.no_cache or task.backend == "replay" else None
    result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=cache_dir)
    print(final_report(result, task))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare agents over seeds on one task and budget; table on stdout, CSV and PNG under runs/."""
    from tuner.agents import AGENT_NAMES, make_agent
    from tuner.compare import compare_table, run_compare
    from tuner.task import load_task

    task = load_task(args.env)
    names = [name.strip() for name in args.agents.split(",") if name.strip()]
    for name in names:
        if name not in AGENT_NAMES:
            raise ConfigError(f"unknown agent; known: {', '.join(AGENT_NAMES)}", field="--agents", value=name)
    budget = task.budget if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError("must be a positive number of measurements", field="--budget", value=budget)
    if args.seeds <= 0:
        raise ConfigError("must be a positive number of seeds", field="--seeds", value=args.seeds)
    out_dir = _runs_dir(args) / _run_name(args, "compare", task.id)
    factories = [lambda name=name: make_agent(name, sampler=args.sampler) for name in names]
    report = run_compare(task, factories, budget=budget, seeds=range(args.seeds), out_dir=out_dir,
                         progress=lambda line: print(line, flush=True))
    print()
    print(f"best known feasible {report['metric']}: {report['best_known']:.1f}")
    print(compare_table(report))
    print(f"\nfiles: {out_dir}/compare.csv, curves.csv, best_so_far.png, compare.json")
    return 0


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

    tune = commands.add_parser("tune", help="search for the best config with one agent and one budget")
    tune.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    tune.add_argument("--agent", default="optuna", help="ppo, optuna (default) or random")
    tune.add_argument("--budget", type=int, help="measurements to spend (cached results are free; default: the task's)")
    tune.add_argument("--seed", type=int, help="random seed (default: the task's)")
    tune.add_argument("--sampler", help="optuna sampler: tpe (default), gp, nsga2, cmaes, random")
    tune.add_argument("--pareto", action="store_true", help="optuna: multi-objective (tokens/s, top1, memory)")
    tune.add_argument("--storage", help="optuna storage URL (default: sqlite under runs/)")
    tune.add_argument("--study", help="optuna study name to create or join (default: the run name)")
    tune.add_argument("--policy", help="ppo: start from a saved policy (.zip)")
    tune.add_argument("--run", help="run name (default: tune-<agent>-<task>-<time>)")
    tune.add_argument("--no-cache", action="store_true", help="measure every config anew (a cache for this run only)")
    tune.set_defaults(handler=cmd_tune)

    compare = commands.add_parser("compare", help="compare agents on one task, budget and several seeds")
    compare.add_argument("env", help="task spec, e.g. envs/smollm2-cpu-replay.yaml")
    compare.add_argument("--agents", default="ppo,optuna,random", help="comma-separated (default: ppo,optuna,random)")
    compare.add_argument("--budget", type=int, help="measurements per run (default: the task's)")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per agent (default 3)")
    compare.add_argument("--sampler", help="optuna sampler (default tpe)")
    compare.add_argument("--run", help="folder name under runs/ (default: compare-<task>-<time>)")
    compare.set_defaults(handler=cmd_compare)

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
