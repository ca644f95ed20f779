"""``infertune compare``: several agents on one task, one budget and several seeds."""

from __future__ import annotations

import argparse

from tuner.commands.common import budget_of, mlflow_mirror, run_name, runs_folder, time_value
from tuner.run.lock import hold_run
from tuner.util.errors import ConfigError


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``compare`` subcommand's arguments, bound to its handler."""
    compare = commands.add_parser("compare", help="compare agents on one task, budget and several seeds")
    compare.add_argument("env", help="task spec, e.g. envs/smollm2-cpu-replay.yaml")
    compare.add_argument("--agents", default="ppo,optuna,random", help="comma-separated (default: ppo,optuna,random)")
    compare.add_argument("--budget", type=int, help="measurements per run (default: the task's)")
    compare.add_argument("--time", type=time_value, metavar="DURATION", help="wall-clock budget of each agent run "
                         "(seed), e.g. 90s, 10m, 1.5h, 600 (seconds), beside --budget: whichever comes first")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per agent (default 3)")
    compare.add_argument("--sampler", help="optuna sampler (default tpe)")
    compare.add_argument("--run", help="folder name under runs/ (default: compare-<task>-<time>)")
    compare.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    compare.set_defaults(handler=cmd_compare)


def cmd_compare(args: argparse.Namespace) -> int:
    """Compare agents over seeds on one task and budget; table on stdout, CSV and PNG under runs/."""
    from tuner.agents import AGENT_NAMES, make_agent
    from tuner.results.comparison import compare_table
    from tuner.run.compare import run_compare
    from tuner.task import load_task
    from tuner.util.formatting import shown

    task = load_task(args.env)
    names = [name.strip() for name in args.agents.split(",") if name.strip()]
    if not names:
        raise ConfigError(f"name at least one agent of {', '.join(AGENT_NAMES)}", field="--agents", value=args.agents)
    for name in names:
        if name not in AGENT_NAMES:
            raise ConfigError(f"unknown agent; known: {', '.join(AGENT_NAMES)}", field="--agents", value=name)
    budget = budget_of(args, task)
    if args.seeds <= 0:
        raise ConfigError("must be a positive number of seeds", field="--seeds", value=args.seeds)
    out_dir = runs_folder(args) / run_name(args, "compare", task.id)
    hold_run(out_dir, "--run")
    factories = [lambda name=name: make_agent(name, sampler=args.sampler, space=task.space) for name in names]
    settings = {"agents": ",".join(names), "budget": budget, "time_s": args.time, "seeds": args.seeds}
    tracker = mlflow_mirror(args, task, out_dir.name, settings)
    report = run_compare(task, factories, budget=budget, seeds=range(args.seeds), out_dir=out_dir,
                         progress=lambda line: print(line, flush=True), tracker=tracker, time_s=args.time)
    print()
    print(f"best known feasible {report['metric']}: {shown(report['best_known'], '.1f')}")
    print(compare_table(report))
    print(f"\nfiles: {out_dir}/compare.csv, curves.csv, best_so_far.png, compare.json")
    return 0
