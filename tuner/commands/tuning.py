"""``infertune tune`` and ``infertune compare``."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from tuner.commands.common import mlflow_mirror, run_name, runs_folder
from tuner.errors import ConfigError

if TYPE_CHECKING:
    from tuner.task import TaskSpec


def _budget(args: argparse.Namespace, task: TaskSpec) -> int:
    """--budget, else the task's; a one-line error unless positive."""
    budget = task.budget if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError("must be a positive number of measurements", field="--budget", value=budget)
    return budget


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune a task with one agent and print the trials, the best config and the Pareto front."""
    from tuner.agents import make_agent
    from tuner.task import load_task
    from tuner.tuning import final_report, run_tune

    task = load_task(args.env)
    budget = _budget(args, task)
    seed = task.seed if args.seed is None else args.seed
    run_dir = runs_folder(args) / run_name(args, f"tune-{args.agent}", task.id)
    agent = make_agent(args.agent, sampler=args.sampler, pareto=args.pareto, storage=args.storage,
                       study_name=args.study, policy=args.policy)
    print(f"tuning {task.id} with {args.agent}: budget {budget} measurements, seed {seed}, run {run_dir.name}",
          flush=True)
    cache_dir = run_dir / "cache" if args.no_cache or task.backend == "replay" else None
    tracker = mlflow_mirror(args, task, run_dir.name, {**agent.describe(), "budget": budget, "seed": seed})
    result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=cache_dir, tracker=tracker)
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
    budget = _budget(args, task)
    if args.seeds <= 0:
        raise ConfigError("must be a positive number of seeds", field="--seeds", value=args.seeds)
    out_dir = runs_folder(args) / run_name(args, "compare", task.id)
    factories = [lambda name=name: make_agent(name, sampler=args.sampler) for name in names]
    settings = {"agents": ",".join(names), "budget": budget, "seeds": args.seeds}
    tracker = mlflow_mirror(args, task, out_dir.name, settings)
    report = run_compare(task, factories, budget=budget, seeds=range(args.seeds), out_dir=out_dir,
                         progress=lambda line: print(line, flush=True), tracker=tracker)
    print()
    print(f"best known feasible {report['metric']}: {report['best_known']:.1f}")
    print(compare_table(report))
    print(f"\nfiles: {out_dir}/compare.csv, curves.csv, best_so_far.png, compare.json")
    return 0
