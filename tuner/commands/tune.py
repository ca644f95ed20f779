"""``infertune tune``: search for the best config with one agent and one budget; ``--resume`` goes on."""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

from tuner.commands.common import (
    budget_of,
    confirmations_value,
    mlflow_mirror,
    run_name,
    runs_folder,
    seed_value,
    time_value,
)
from tuner.evaluation.racing import CONFIRMATIONS, CONTENDERS
from tuner.evaluation.resume import Journal, spent_budget
from tuner.measure.early_stop import PRUNE_BELOW
from tuner.run.lock import hold_run
from tuner.run.tune import INPUTS, RUN_SETTINGS, changed_inputs, input_hashes
from tuner.task import MAX_SEED, TaskSpec
from tuner.util.durations import clock_text
from tuner.util.errors import ConfigError
from tuner.util.names import checked_name
from tuner.util.redact import MASK, redact_url, same_url
from tuner.util.text_file import read_json_object


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``tune`` subcommand's arguments, bound to its handler."""
    tune = commands.add_parser("tune", help="search for the best config with one agent and one budget")
    tune.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    tune.add_argument("--agent", help="coordinate, ppo, optuna or random (default: coordinate search from the "
                      "default config on the static-batch knobs, where benchmarks/searchers.py ranks it first; optuna "
                      "on other knobs, or when an Optuna flag is given)")
    tune.add_argument("--budget", type=int, help="measurements to spend (cached results are free; default: the task's)")
    tune.add_argument("--time", type=time_value, metavar="DURATION", help="wall-clock budget from the start, "
                      "e.g. 90s, 10m, 1.5h, 600 (seconds): no measurement starts that the time left does not fit; "
                      "the run stops at --budget or --time, whichever comes first")
    tune.add_argument("--seed", type=seed_value, help="random seed (default: the task's)")
    tune.add_argument("--sampler", help="optuna sampler: tpe (default), gp, nsga2, cmaes, random")
    tune.add_argument("--pareto", action="store_true", help="optuna: multi-objective (tokens/s, top1, memory)")
    tune.add_argument("--storage", help="study storage URL, e.g. postgresql://... (default: sqlite under runs/): "
                      "optuna's study, or the pretrained policy's history shared by every worker")
    tune.add_argument("--study", help="study name to create or join (default: the run name); workers on one study "
                      "share its history and budget and never measure the same config")
    tune.add_argument("--heartbeat", type=int, metavar="SECONDS", help="a shared study: heartbeat interval of a "
                      "running trial (default 5); a trial silent for 4 intervals is failed and retried once")
    tune.add_argument("--warm-start", action="store_true", help="optuna: first try the best configs of the "
                      "library's landscapes most like this task (envs/recordings/library)")
    tune.add_argument("--policy", help="ppo: the policy that proposes (default: policies/default.zip, pretrained on "
                      "the landscape library); 'none' or a policy saved by a run: PPO that learns on this task")
    tune.add_argument("--envs", type=int, metavar="N", help="ppo: N environments in parallel (SubprocVecEnv, one "
                      "per GPU; on a CPU they share its cores and disturb each other's timings)")
    tune.add_argument("--confirm", type=confirmations_value, metavar="N", help="before naming the winner, measure "
                      f"the best {CONTENDERS} configs again, in turn, until their 95%% intervals separate: at most N "
                      f"measurements beyond the budget (default {CONFIRMATIONS}; 0 for a worker joining a shared "
                      "--study; 0: name the best measured once)")
    tune.add_argument("--no-prune", action="store_true", help="measure every config whole: no early stop when a "
                      "config breaks an accuracy or latency bound, or cannot reach half the best throughput so far")
    tune.add_argument("--run", help="run name (default: tune-<agent>-<task>-<time>)")
    tune.add_argument("--no-cache", action="store_true", help="measure every config anew (a cache for this run only)")
    tune.add_argument("--resume", metavar="RUN", help="continue an interrupted run (its folder name under runs/): "
                      "nothing finished is measured again; agent, seed and study come from the run")
    tune.add_argument("--cache-dir", help="measurement cache folder (default: runs/cache); workers on several "
                      "machines share one by pointing at the same folder")
    tune.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    tune.set_defaults(handler=cmd_tune)


RESUMED_SETTINGS = ("agent", "seed", "sampler", "pareto", "storage", "study", "policy", "envs", "warm_start")


def _resume_folder(args: argparse.Namespace) -> Path:
    """The folder of the run --resume names; a one-line error unless it is a safe name of a run tune started."""
    name = checked_name(args.resume, "--resume")
    run_dir = runs_folder(args) / name
    if not (run_dir / RUN_SETTINGS).is_file():
        raise ConfigError(f"no {RUN_SETTINGS} in {run_dir}: not a run started by infertune tune", field="--resume",
                          value=name)
    return run_dir


# what run.json may hold for each setting a resumed run takes from it (None: not given when the run started)
SAVED_TYPES: dict[str, tuple[type, ...]] = {
    "agent": (str,), "seed": (int,), "sampler": (str,), "pareto": (bool,), "storage": (str,), "study": (str,),
    "policy": (str,), "envs": (int,), "warm_start": (bool,), "budget": (int,), "no_cache": (bool,),
    "cache_dir": (str,), "time_s": (int, float), "confirm": (int,), "no_prune": (bool,)}


def _check_saved_types(saved: dict[str, Any], source: Path) -> None:
    """A one-line error for a damaged run.json whose settings are of the wrong type (an edit, a bad sync)."""
    for name, kinds in SAVED_TYPES.items():
        value = saved.get(name)
        if value is None:
            continue
        wrong_bool = isinstance(value, bool) and bool not in kinds
        out_of_range = name in ("seed", "budget", "envs", "confirm") and isinstance(value, int) and not (
            0 <= value <= MAX_SEED if name == "seed" else value >= 0 if name == "confirm" else value > 0)
        bad_time = name == "time_s" and isinstance(value, int | float) and not (value > 0 and math.isfinite(value))
        if not isinstance(value, kinds) or wrong_bool or out_of_range or bad_time:
            raise ConfigError("damaged run setting; start a new run", source=str(source), field=name, value=value)


def _resumed(args: argparse.Namespace, task: TaskSpec, run_dir: Path) -> dict[str, Any]:
    """The interrupted run's settings (run.json); a contradicting flag or a changed task is a one-line error."""
    saved = read_json_object(run_dir / RUN_SETTINGS)
    if not isinstance(saved, dict):
        raise ConfigError(f"{run_dir / RUN_SETTINGS} is not a JSON object", field="--resume", value=args.resume)
    _check_saved_types(saved, run_dir / RUN_SETTINGS)
    if saved.get("task") != task.id:
        raise ConfigError(f"the run tuned task {saved.get('task')!r}, not this one", field="--resume",
                          value=args.resume)
    changed = changed_inputs(saved[INPUTS], task) if isinstance(saved.get(INPUTS), dict) else []
    if changed:  # the same id over another space or recording would mix two tasks' records in one run
        raise ConfigError(f"the task's files changed since the run started ({'; '.join(changed)}); its records "
                          "belong to the old task: start a new run", field="--resume", value=args.resume)
    for name in RESUMED_SETTINGS:
        given = getattr(args, name, None)
        if given not in (None, False) and not same_url(given, saved.get(name)):
            raise ConfigError(f"the run was started with {saved.get(name)!r}; a resumed run keeps it",
                              field=f"--{name}", value=redact_url(given) if name == "storage" else given)
    if saved.get("storage") and MASK in saved["storage"]:
        if not args.storage:  # run.json never holds a password: the user gives the URL again
            raise ConfigError("the run's storage URL has a password, which run.json does not keep; pass it again",
                              field="--storage", value=saved["storage"])
        saved["storage"] = args.storage
    return saved


def _time_used(journal: Journal) -> float:
    """Seconds the interrupted attempt used: the sum of its records' ``duration_s`` (its worker start, model
    conversion and the time between measurements are not in the records, so a resumed run gets a little more)."""
    return sum(record.duration_s for record in journal.pending
               if isinstance(record.duration_s, int | float) and math.isfinite(record.duration_s))


def _nothing_left(run_dir: Path, journal: Journal, budget: int) -> str | None:
    """Why a resumed run has nothing to measure (its records spent ``budget``, the run's total), or None.

    A run whose records spent exactly its budget but that has no summary.json yet (killed after its last
    measurement) is not done: resuming it writes its summary and measures nothing.
    """
    spent = sum(spent_budget(record) for record in journal.pending)
    if spent > budget or (spent == budget and (run_dir / "summary.json").is_file()):
        return (f"{run_dir.name}: already spent {spent} measurements of a total budget of {budget} (on --resume, "
                "--budget is the run's total, earlier measurements included): nothing to measure; a larger --budget "
                "goes on")
    return None


def _warm_start_library(task_id: str) -> list:
    """The shipped landscape library, without a landscape recorded for this very task (that would be the answer)."""
    from tuner.library.catalog import load_library

    return [landscape for landscape in load_library() if landscape.name != task_id]


# Flags that pick Optuna when no agent is named (--storage, --study and --heartbeat also serve --agent ppo's
# shared history; the default agent keeps none).
OPTUNA_FLAGS = (("sampler", "--sampler"), ("pareto", "--pareto"), ("storage", "--storage"), ("study", "--study"),
                ("heartbeat", "--heartbeat"), ("warm_start", "--warm-start"))
SHARED_STUDY_AGENTS = ("optuna", "ppo")  # the agents that can share a study with other workers


def _chosen_agent(args: argparse.Namespace, task: TaskSpec) -> tuple[str, str | None]:
    """(agent, why) for a new run: --agent (no why), else Optuna when one of its flags is given, else the default."""
    from tuner.agents import default_agent

    if args.agent:
        return args.agent, None
    optuna_flags = [flag for name, flag in OPTUNA_FLAGS if getattr(args, name, None) not in (None, False)]
    if optuna_flags:
        return "optuna", f"{', '.join(optuna_flags)} given"
    name, why = default_agent(task.space)
    return name, f"the default: {why}"


def cmd_tune(args: argparse.Namespace) -> int:
    """Tune a task with one agent and print the trials, the best config and the Pareto front."""
    from tuner.agents import make_agent
    from tuner.records import read_records
    from tuner.run.tune import final_report, run_tune
    from tuner.task import load_task

    task = load_task(args.env)
    settings = {name: getattr(args, name, None) for name in RESUMED_SETTINGS}
    settings["agent"], why = _chosen_agent(args, task) if args.resume is None else (None, None)
    journal = None
    if args.resume is not None:
        run_dir = _resume_folder(args)
        hold_run(run_dir, "--resume")  # before reading: no other process may write this run while this one runs
        saved = _resumed(args, task, run_dir)
        settings = {name: saved.get(name) for name in RESUMED_SETTINGS}
        why = None
        args.budget = args.budget if args.budget is not None else saved.get("budget")
        args.time = args.time if args.time is not None else saved.get("time_s")  # the run's total, like --budget
        args.no_cache = args.no_cache or saved.get("no_cache", False)
        args.no_prune = args.no_prune or saved.get("no_prune", False)
        args.confirm = args.confirm if args.confirm is not None else saved.get("confirm")
        args.cache_dir = args.cache_dir or saved.get("cache_dir")
        journal = Journal(read_records(run_dir / "records.jsonl"))
    else:
        run_dir = runs_folder(args) / run_name(args, f"tune-{settings['agent']}", task.id)
        if args.storage and args.study and not args.run:
            run_dir = run_dir.with_name(f"{run_dir.name}-{os.getpid()}")  # workers started together stay apart
    if args.heartbeat is not None and args.heartbeat <= 0:
        raise ConfigError("must be a positive number of seconds", field="--heartbeat", value=args.heartbeat)
    shared = next((flag for name, flag in (("storage", "--storage"), ("study", "--study")) if settings[name]), None)
    if shared and settings["agent"] not in SHARED_STUDY_AGENTS:
        raise ConfigError(f"a shared study is for --agent {' or '.join(SHARED_STUDY_AGENTS)}", field=shared,
                          value=settings["agent"])
    if settings["warm_start"] and settings["agent"] != "optuna":
        raise ConfigError("a warm start is for --agent optuna (ppo starts from its pretrained policy)",
                          field="--warm-start", value=settings["agent"])
    budget = budget_of(args, task)
    time_used = _time_used(journal) if journal is not None else 0.0
    done = _nothing_left(run_dir, journal, budget) if journal is not None else None
    if done is None and args.time is not None and time_used >= args.time and (run_dir / "summary.json").is_file():
        done = (f"{run_dir.name}: already used {clock_text(time_used)} of a time budget of {clock_text(args.time)} "
                "(on --resume, --time is the run's total): nothing to measure; a larger --time goes on")
    if done is not None:
        print(done)
        return 0
    seed = task.seed if settings["seed"] is None else settings["seed"]
    agent = make_agent(settings["agent"], sampler=settings["sampler"], pareto=settings["pareto"],
                       storage=settings["storage"], study_name=settings["study"], policy=settings["policy"],
                       heartbeat_s=args.heartbeat, n_envs=settings["envs"], space=task.space,
                       warm_start=_warm_start_library(task.id) if settings["warm_start"] else None)
    hold_run(run_dir, "--run")  # a new run: locked once every flag is checked, before its folder is written
    args.active_run, args.env = run_dir.name, str(args.env)
    verb = f"resuming {run_dir.name} ({len(journal)} records taken)" if journal else f"run {run_dir.name}"
    limit = "" if args.time is None else f" or {clock_text(args.time)}" + (
        f" ({clock_text(time_used)} used before)" if time_used else "")
    print(f"tuning {task.id} with {settings['agent']}: budget {budget} measurements{limit}, seed {seed}, {verb}",
          flush=True)
    if why:  # the agent was not named: say why this one (a new run's default, or an Optuna flag)
        print(f"  agent {settings['agent']}: {why}; --agent chooses another", flush=True)
    # A worker joining a shared study does not race on its own: every worker would re-measure the same contenders.
    confirm = args.confirm if args.confirm is not None else 0 if settings["study"] else CONFIRMATIONS
    cache_dir = Path(args.cache_dir) if args.cache_dir else None
    if cache_dir is None and (args.no_cache or task.backend == "replay"):
        cache_dir = run_dir / "cache"
    run_settings = {**settings, "storage": redact_url(settings["storage"]), "seed": seed, "task": task.id,
                    "task_file": str(task.source.resolve()), INPUTS: input_hashes(task),
                    "budget": budget, "time_s": args.time, "no_cache": bool(args.no_cache), "confirm": confirm,
                    "no_prune": bool(args.no_prune),
                    "cache_dir": str(cache_dir.resolve()) if cache_dir else None}
    tracker = mlflow_mirror(args, task, run_dir.name, {**agent.describe(), "budget": budget, "time_s": args.time,
                                                       "seed": seed})
    result = run_tune(task, agent, budget=budget, seed=seed, run_dir=run_dir, cache_dir=cache_dir, tracker=tracker,
                      journal=journal, settings=run_settings, time_s=args.time, time_used_s=time_used,
                      prune_below=None if args.no_prune else PRUNE_BELOW, confirm=confirm)
    print(final_report(result, task))
    return 0
