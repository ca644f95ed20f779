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


def _tracker(args: argparse.Namespace, task, run_name: str, params: dict):
    """An MLflow mirror of this invocation (None with --no-mlflow); its failures only warn."""
    if getattr(args, "no_mlflow", False):
        return None
    from tuner.measure.fingerprint import fingerprint, resolve_device
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.mlflow_sink import MlflowSink

    runs = _runs_dir(args)
    sink = MlflowSink(resolve_tracking_uri(args.tracking_uri, runs), task.id, artifact_root=runs / "mlartifacts")
    tags = {"task_file": str(task.source.resolve()), "backend": task.backend}
    if task.backend != "replay":
        tags.update({f"fingerprint.{key}": value for key, value in fingerprint(resolve_device(task.device)).items()})
    sink.start(run_name, {"task": task.id, "space": task.space.label, **params}, tags)
    return sink


def _read_config_file(path: str) -> dict:
    """A config from a JSON file: an ``infertune export --to hf`` file or a plain {knob: value} object."""
    from tuner.export.hf import KIND, config_from_export

    try:
        document = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as error:
        raise ConfigError(f"cannot read a JSON config: {str(error).splitlines()[0]}", source=path) from None
    if not isinstance(document, dict):
        raise ConfigError("a config file holds a JSON object", source=path)
    return config_from_export(document) if document.get("kind") == KIND else document


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
    base = _read_config_file(args.config) if args.config else {}
    if args.config:
        task.space.complete(base, source=args.config)  # one-line error for a knob or value the space lacks
    configs = [task.space.complete({**base, **partial}, source="--set") for partial in _sweep(task.space, args.set)]
    run_dir = _runs_dir(args) / _run_name(args, "measure", task.id)
    records = []
    tracker = _tracker(args, task, run_dir.name, {"agent": "measure", "configs": len(configs)})
    with Evaluator(task, run_dir, use_cache=not args.no_cache, echo_worker=args.verbose) as evaluator:
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
    tracker = _tracker(args, task, run_dir.name, {**agent.describe(), "budget": budget, "seed": seed})
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
    budget = task.budget if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError("must be a positive number of measurements", field="--budget", value=budget)
    if args.seeds <= 0:
        raise ConfigError("must be a positive number of seeds", field="--seeds", value=args.seeds)
    out_dir = _runs_dir(args) / _run_name(args, "compare", task.id)
    factories = [lambda name=name: make_agent(name, sampler=args.sampler) for name in names]
    tracker = _tracker(args, task, out_dir.name, {"agents": ",".join(names), "budget": budget, "seeds": args.seeds})
    report = run_compare(task, factories, budget=budget, seeds=range(args.seeds), out_dir=out_dir,
                         progress=lambda line: print(line, flush=True), tracker=tracker)
    print()
    print(f"best known feasible {report['metric']}: {report['best_known']:.1f}")
    print(compare_table(report))
    print(f"\nfiles: {out_dir}/compare.csv, curves.csv, best_so_far.png, compare.json")
    return 0


def cmd_sync(args: argparse.Namespace) -> int:
    """Upload a run's records to MLflow; what is there already is skipped, so it never duplicates."""
    from tuner.records import read_records
    from tuner.task import load_task

    run_dir = _runs_dir(args) / args.run
    files = [run_dir / "records.jsonl", *sorted(run_dir.glob("*/records.jsonl"))]
    records = [record for path in files for record in read_records(path)]
    if not records:
        raise ConfigError("no records.jsonl there", source=str(run_dir), field="RUN", value=args.run)
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    task = load_task(_task_file_of(args, run_dir, records[0].task))
    agent = summary.get("agent", {"agent": records[0].agent})
    tracker = _tracker(args, task, run_dir.name, {**agent, "budget": summary.get("budget", "")})
    if tracker.parent_id is None:
        return 1
    before = len(tracker.trial_runs)
    for record in records:
        tracker.log_record(record)
    best = summary.get("best")
    if best is not None:
        record = next((r for r in records if r.trial == best["trial"] and r.run == run_dir.name), None)
        if record is not None:
            tracker.mark_deployable(record, [run_dir / "export", run_dir / "pareto.png", run_dir / "trials.csv",
                                             summary_path])
    tracker.finish(summary or None)
    added = len(tracker.trial_runs) - before
    print(f"synced {run_dir.name}: {added} trial runs added, {before} already in MLflow, "
          f"{tracker.failures} failed uploads ({tracker.tracking_uri})")
    return 0 if tracker.failures == 0 else 1


def _find_task_file(args: argparse.Namespace, task_id: str) -> Path:
    from tuner.task import load_task

    for path in sorted(Path(args.envs_dir).glob("*.yaml")):
        try:
            if load_task(path).id == task_id:
                return path
        except UserError:
            continue
    raise ConfigError("no task file with this id in the envs folder", source=args.envs_dir, field="task",
                      value=task_id)


def cmd_export(args: argparse.Namespace) -> int:
    """Write the serving-stack files for a run's best config, a trial, or the best ever measured for a task."""
    from tuner.export import TARGETS, export_to
    from tuner.task import load_task
    from tuner.tuning import export_context

    targets = list(TARGETS) if args.to == "all" else [args.to]
    if args.to != "all" and args.to not in TARGETS:
        raise ConfigError(f"unknown export target; known: {', '.join(TARGETS)}, all", field="--to", value=args.to)
    runs = _runs_dir(args)
    if args.best:
        task = load_task(args.best)
        record = _best_record(runs, task.id)
        mlflow_id = None
    else:
        record, task, mlflow_id = _record_for_run(args, runs, args.run_id)
    out_dir = Path(args.out) if args.out else runs / "export" / f"{task.id}-{record.run}-trial{record.trial}"
    paths, warnings = export_to(targets, record.config, export_context(task, record, runs, mlflow_id), out_dir)
    for warning in warnings:
        print(f"infertune: warning: {warning}", file=sys.stderr)
    print(f"exported trial {record.trial} of {record.run} ({record.metrics.get('tokens_per_s', 0):.1f} tok/s):")
    for path in paths:
        print(f"  {path}")
    return 0


def _best_record(folder: Path, task_id: str | None):
    """The best rankable record under ``folder`` (of ``task_id``, when given)."""
    from tuner.records import read_records
    from tuner.session import rankable

    candidates = [record for path in folder.glob("**/records.jsonl") for record in read_records(path)
                  if (task_id is None or record.task == task_id) and rankable(record)]
    if not candidates:
        raise ConfigError("no deployable record (status ok, inside the objective's bounds) there", source=str(folder),
                          field="--best" if task_id else "RUN_ID", value=task_id or folder.name)
    return max(candidates, key=lambda record: record.objective)


def _task_file_of(args: argparse.Namespace, run_dir: Path, task_id: str) -> Path:
    """The task file a run used: from its summary.json, else the envs folder entry with that id."""
    summary_path = run_dir / "summary.json"
    if summary_path.is_file():
        recorded = json.loads(summary_path.read_text()).get("task_file")
        if recorded and Path(recorded).is_file():
            return Path(recorded)
    return _find_task_file(args, task_id)


def _record_for_run(args: argparse.Namespace, runs: Path, run_id: str):
    """(record, task, MLflow run id) for an infertune run name (its best) or an MLflow run id."""
    from tuner.records import read_records
    from tuner.task import load_task

    run_dir = runs / run_id
    if (run_dir / "records.jsonl").is_file():
        best = _best_record(run_dir, None)
        return best, load_task(_task_file_of(args, run_dir, best.task)), None
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.lookup import find_trial

    found = find_trial(resolve_tracking_uri(args.tracking_uri, runs), run_id)
    if found is None:
        raise ConfigError("neither a run folder nor an MLflow run id", source=str(runs), field="RUN_ID", value=run_id)
    run_name, trial, task_file, mlflow_id = found
    record = next((r for r in read_records(runs / run_name / "records.jsonl") if r.trial == trial), None)
    if record is None:
        raise ConfigError("the MLflow run points at a record that is not on this machine", source=str(runs / run_name),
                          field="trial", value=trial)
    return record, load_task(_task_file_of(args, runs / run_name, record.task) if not task_file
                             or not Path(task_file).is_file() else task_file), mlflow_id


def cmd_ui(args: argparse.Namespace) -> int:
    """Serve the MLflow UI on the embedded store (127.0.0.1:5000 unless told otherwise)."""
    from tuner.tracking import resolve_tracking_uri

    uri = resolve_tracking_uri(args.tracking_uri, _runs_dir(args))
    if not uri.startswith("sqlite:"):
        raise ConfigError("the UI serves the embedded SQLite store; open the tracking server itself",
                          field="--tracking-uri", value=uri)
    print(f"MLflow UI on http://{args.host}:{args.port} ({uri}); Ctrl-C stops it", flush=True)
    command = [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", uri, "--host", args.host,
               "--port", str(args.port), "--workers", "1"]
    os.execv(sys.executable, command)
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
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or SQLite under "
                                               "runs/)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    measure = commands.add_parser("measure", help="measure configs of a task for real")
    measure.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    measure.add_argument("--set", action="append", default=[], metavar="KNOB=VALUE[,VALUE...]",
                         help="set a knob (repeatable; comma-separated values measure each)")
    measure.add_argument("--json", action="store_true", help="print each record as one JSON line")
    measure.add_argument("--no-cache", action="store_true", help="measure even when a cached result exists")
    measure.add_argument("--run", help="run name (default: measure-<task>-<time>); an existing run is appended to")
    measure.add_argument("--config", help="a JSON config to start from (e.g. an `export --to hf` file)")
    measure.add_argument("-v", "--verbose", action="store_true", help="echo the worker's log")
    measure.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
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
    tune.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    tune.set_defaults(handler=cmd_tune)

    compare = commands.add_parser("compare", help="compare agents on one task, budget and several seeds")
    compare.add_argument("env", help="task spec, e.g. envs/smollm2-cpu-replay.yaml")
    compare.add_argument("--agents", default="ppo,optuna,random", help="comma-separated (default: ppo,optuna,random)")
    compare.add_argument("--budget", type=int, help="measurements per run (default: the task's)")
    compare.add_argument("--seeds", type=int, default=3, help="seeds per agent (default 3)")
    compare.add_argument("--sampler", help="optuna sampler (default tpe)")
    compare.add_argument("--run", help="folder name under runs/ (default: compare-<task>-<time>)")
    compare.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    compare.set_defaults(handler=cmd_compare)

    sync = commands.add_parser("sync", help="upload a run to MLflow later (no duplicates)")
    sync.add_argument("run", help="run folder name under runs/")
    sync.add_argument("--envs-dir", default="envs", help="where to find the task file if the run does not say")
    sync.set_defaults(handler=cmd_sync)

    export = commands.add_parser("export", help="write serving-stack configs for a measured config")
    export.add_argument("run_id", nargs="?", help="a run folder name (its best config) or an MLflow run id")
    export.add_argument("--best", metavar="ENV", help="the best deployable config ever measured for this task")
    export.add_argument("--to", required=True, help="vllm, sglang, tgi, trtllm, hf or all")
    export.add_argument("--out", help="output folder (default: runs/export/<task>-<run>-trial<n>)")
    export.add_argument("--envs-dir", default="envs", help="where to find the task file if the run does not say")
    export.set_defaults(handler=cmd_export)

    ui = commands.add_parser("ui", help="serve the MLflow UI on the embedded store")
    ui.add_argument("--host", default="127.0.0.1")
    ui.add_argument("--port", type=int, default=5000)
    ui.set_defaults(handler=cmd_ui)

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
    if args.command == "export" and bool(args.run_id) == bool(args.best):
        print("infertune export: error: give a RUN_ID or --best ENV (one of them)", file=sys.stderr)
        return 2
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
