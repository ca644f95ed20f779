"""Helpers shared by the subcommands: runs folder, run names, the MLflow mirror, task files, argument parsing."""

from __future__ import annotations

import argparse
import os
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from tuner.results.run_folder import RunFolder, is_run, read_run
from tuner.task import MAX_SEED
from tuner.util.durations import parse_duration
from tuner.util.errors import ConfigError, UserError
from tuner.util.names import checked_run_name, is_name
from tuner.util.text_file import read_json_object

if TYPE_CHECKING:
    from tuner.task import TaskSpec
    from tuner.tracking.mlflow_sink import MlflowSink


def runs_folder(args: argparse.Namespace) -> Path:
    """--runs-dir, else $INFERTUNE_RUNS_DIR, else ./runs."""
    return Path(args.runs_dir or os.environ.get("INFERTUNE_RUNS_DIR", "runs"))


def check_runs_folder(args: argparse.Namespace) -> None:
    """A one-line error now, before any work, when the runs folder cannot be written (a file, read-only, no
    permission); else MLflow retries its SQLite store for minutes and the run dies with a traceback."""
    folder = runs_folder(args)
    from_env = os.environ.get("INFERTUNE_RUNS_DIR")
    flag = "--runs-dir" if args.runs_dir else "$INFERTUNE_RUNS_DIR" if from_env else "runs folder"
    where = {"field": flag, "value": str(folder)}
    if folder.exists() and not folder.is_dir():
        raise UserError("is a file, not a folder", **where)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / f".write-check-{os.getpid()}"
        probe.touch()
        probe.unlink()
    except OSError as error:
        raise UserError(f"cannot write there ({error.strerror or error})", **where) from None


def run_name(args: argparse.Namespace, kind: str, task_id: str) -> str:
    """--run (a one-line error unless a safe name), else ``<kind>-<task>-<time>`` (the task id cut to 64 characters,
    so that the name, a worker's ``-<pid>`` included, stays a safe name)."""
    if args.run is not None:
        return checked_run_name(args.run, "--run")
    return f"{kind}-{task_id[:64]}-{datetime.now().strftime('%Y%m%d-%H%M%S')}"


def mlflow_mirror(args: argparse.Namespace, task: TaskSpec, name: str, params: dict[str, Any]) -> MlflowSink | None:
    """An MLflow mirror of this invocation (None with --no-mlflow); its failures only warn."""
    if getattr(args, "no_mlflow", False):
        return None
    from tuner.measure.fingerprint import fingerprint, resolve_device
    from tuner.tracking import resolve_tracking_uri
    from tuner.tracking.mlflow_sink import MlflowSink

    runs = runs_folder(args)
    sink = MlflowSink(resolve_tracking_uri(args.tracking_uri, runs), task.id, artifact_root=runs / "mlartifacts")
    tags = {"task_file": str(task.source.resolve()), "backend": task.backend}
    if task.backend != "replay":
        tags.update({f"fingerprint.{key}": value for key, value in fingerprint(resolve_device(task.device)).items()})
    sink.start(name, {"task": task.id, "space": task.space.label, **params}, tags)
    return sink


def find_task_file(args: argparse.Namespace, task_id: str) -> Path:
    """The task file in --envs-dir whose id is ``task_id``."""
    from tuner.task import load_task

    for path in sorted(Path(args.envs_dir).glob("*.yaml")):
        try:
            if load_task(path).id == task_id:
                return path
        except UserError:
            continue
    raise ConfigError("no task file with this id in the envs folder", source=args.envs_dir, field="task",
                      value=task_id)


def task_file_of(args: argparse.Namespace, run_dir: Path, task_id: str) -> Path:
    """The task file a run used: from its summary.json, else the envs folder entry with that id."""
    recorded = (read_json_object(run_dir / "summary.json") or {}).get("task_file")
    if isinstance(recorded, str) and recorded and Path(recorded).is_file():
        return Path(recorded)
    return find_task_file(args, task_id)


def open_run(args: argparse.Namespace, name: str) -> RunFolder:
    """The run ``name`` under the runs folder; a one-line error when there is none."""
    folder = runs_folder(args) / name
    if not is_name(name) or not is_run(folder):  # a name, never a path out of the runs folder
        raise ConfigError(f"no run of that name under {runs_folder(args)} (infertune runs lists them)", field="RUN",
                          value=name)
    return read_run(folder)


def budget_of(args: argparse.Namespace, task: TaskSpec) -> int:
    """--budget, else the task's; a one-line error unless positive."""
    budget = task.budget if args.budget is None else args.budget
    if budget <= 0:
        raise ConfigError("must be a positive number of measurements", field="--budget", value=budget)
    return budget


def seed_value(text: str) -> int:
    """A --seed value, in the range a task's ``seed`` has."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED} (got {text!r})")
    return seed


def confirmations_value(text: str) -> int:
    """A --confirm value: a whole number of measurements from 0."""
    try:
        count = int(text)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"must be a whole number of measurements from 0 (got {text!r})")
    return count


def time_value(text: str) -> float:
    """A --time value in seconds: ``90s``, ``10m``, ``1.5h``, or ``600`` (a plain number is seconds)."""
    seconds = parse_duration(text)
    if seconds is None:
        raise argparse.ArgumentTypeError(f"must be a positive duration such as 90s, 10m, 1.5h or 600 (seconds) "
                                         f"(got {text!r})")
    return seconds


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def add_group(commands: argparse._SubParsersAction, name: str, help_text: str) -> argparse._SubParsersAction:
    """A subcommand made of actions (``infertune spaces show``): the subparsers its actions are added to."""
    return commands.add_parser(name, help=help_text).add_subparsers(dest="action", required=True,
                                                                    parser_class=OneLineErrorParser)
