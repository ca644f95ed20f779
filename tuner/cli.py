"""``infertune``: the command line, a thin composition root over tasks, spaces and the Evaluator."""

from __future__ import annotations

import argparse
import errno
import sys
from typing import NoReturn

from tuner.commands.browsing import cmd_report, cmd_runs, cmd_show
from tuner.commands.common import check_runs_folder
from tuner.commands.learning import cmd_pretrain
from tuner.commands.listing import cmd_envs_list, cmd_spaces_show
from tuner.commands.measuring import cmd_measure
from tuner.commands.shipping import cmd_export, cmd_sync, cmd_ui
from tuner.commands.tuning import cmd_compare, cmd_tune
from tuner.measure.interrupts import handle_interrupts
from tuner.task import MAX_SEED
from tuner.util.errors import EveryConfigFails, UserError
from tuner.util.redact import install_redaction, redact_text

READ_ONLY_COMMANDS = ("spaces", "envs", "runs", "show")  # the others write under the runs folder
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file size limit


def _seed(text: str) -> int:
    """A --seed value, in the range a task's ``seed`` has."""
    try:
        seed = int(text)
    except ValueError:
        seed = -1
    if not 0 <= seed <= MAX_SEED:
        raise argparse.ArgumentTypeError(f"must be an integer from 0 to {MAX_SEED} (got {text!r})")
    return seed


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake as one line with exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


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
    measure.add_argument("--grid", action="store_true", help="every config of the task's space its constraints allow "
                                                             "(knobs given with --set sweep only those values)")
    measure.add_argument("--json", action="store_true", help="print each record as one JSON line")
    measure.add_argument("--no-cache", action="store_true", help="measure even when a cached result exists")
    measure.add_argument("--run", help="run name (default: measure-<task>-<time>); an existing run is appended to")
    measure.add_argument("--config", help="a JSON config to start from (e.g. an `export --to hf` file)")
    measure.add_argument("-v", "--verbose", action="store_true", help="echo the worker's log")
    measure.add_argument("--no-mlflow", action="store_true", help="do not mirror to MLflow")
    measure.set_defaults(handler=cmd_measure)

    pretrain = commands.add_parser("pretrain", help="train the tuning policy on the landscape library (replayed, "
                                   "no inference)")
    pretrain.add_argument("--library", help="folder of landscapes: task .yaml + .jsonl (default: "
                          "envs/recordings/library)")
    pretrain.add_argument("--holdout", nargs="+", default=[], metavar="ID", help="landscapes to leave out")
    pretrain.add_argument("--timesteps", type=int, default=200_000, help="environment steps (default 200000)")
    pretrain.add_argument("--augment", type=float, default=0.0, metavar="SHARE",
                          help="share of episodes on perturbed copies of the landscapes (default 0)")
    pretrain.add_argument("--mirror-batch", type=float, default=0.0, metavar="SHARE",
                          help="share of the perturbed copies whose batch sizes are mirrored, smallest playing as "
                          "largest (default 0)")
    pretrain.add_argument("--seed", type=_seed, default=0)
    pretrain.add_argument("--out", default="policies/default.zip", help="where to save the policy (.zip; its "
                          "canonical values and provenance go beside it as .json)")
    pretrain.add_argument("--no-progress", action="store_true", help="no progress bar")
    pretrain.add_argument("--no-mlflow", action="store_true", help="do not log the learning curve to MLflow")
    pretrain.set_defaults(handler=cmd_pretrain)

    tune = commands.add_parser("tune", help="search for the best config with one agent and one budget")
    tune.add_argument("env", help="task spec, e.g. envs/smollm2-cpu.yaml")
    tune.add_argument("--agent", help="ppo, optuna (default) or random")
    tune.add_argument("--budget", type=int, help="measurements to spend (cached results are free; default: the task's)")
    tune.add_argument("--seed", type=_seed, help="random seed (default: the task's)")
    tune.add_argument("--sampler", help="optuna sampler: tpe (default), gp, nsga2, cmaes, random")
    tune.add_argument("--pareto", action="store_true", help="optuna: multi-objective (tokens/s, top1, memory)")
    tune.add_argument("--storage", help="optuna storage URL (default: sqlite under runs/)")
    tune.add_argument("--study", help="optuna study name to create or join (default: the run name)")
    tune.add_argument("--heartbeat", type=int, metavar="SECONDS", help="optuna: heartbeat interval of a running "
                      "trial (default 5); a trial silent for 4 intervals is failed and retried once")
    tune.add_argument("--warm-start", action="store_true", help="optuna: first try the best configs of the "
                      "library's landscapes most like this task (envs/recordings/library)")
    tune.add_argument("--policy", help="ppo: the policy that proposes (default: policies/default.zip, pretrained on "
                      "the landscape library); 'none' or a policy saved by a run: PPO that learns on this task")
    tune.add_argument("--envs", type=int, metavar="N", help="ppo: N environments in parallel (SubprocVecEnv, one "
                      "per GPU; on a CPU they share its cores and disturb each other's timings)")
    tune.add_argument("--run", help="run name (default: tune-<agent>-<task>-<time>)")
    tune.add_argument("--no-cache", action="store_true", help="measure every config anew (a cache for this run only)")
    tune.add_argument("--resume", metavar="RUN", help="continue an interrupted run (its folder name under runs/): "
                      "nothing finished is measured again; agent, seed and study come from the run")
    tune.add_argument("--cache-dir", help="measurement cache folder (default: runs/cache); workers on several "
                      "machines share one by pointing at the same folder")
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
    ui.add_argument("--run", help="print the links to this run (its deployable trial first) instead of the tasks'")
    ui.add_argument("--links-only", action="store_true", help="print the links and exit (a UI already serves them)")
    ui.set_defaults(handler=cmd_ui)

    runs = commands.add_parser("runs", help="list the runs under the runs folder: task, agent, budget, best, state")
    runs.set_defaults(handler=cmd_runs)

    show_run = commands.add_parser("show", help="a run's best config, how sure it is and what it cost")
    show_run.add_argument("run", help="run folder name under runs/ (infertune runs lists them)")
    show_run.set_defaults(handler=cmd_show)

    report = commands.add_parser("report", help="write a run's report.html (self-contained) and report.md, and "
                                 "attach them to its MLflow run")
    report.add_argument("run", help="run folder name under runs/")
    report.add_argument("--no-mlflow", action="store_true", help="do not attach the report to MLflow")
    report.set_defaults(handler=cmd_report)

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
    install_redaction()  # first: whatever is printed from here on, by us or by a library, is redacted
    handle_interrupts()
    args = build_parser().parse_args(argv)
    if args.command == "export" and bool(args.run_id) == bool(args.best):
        print("infertune export: error: give a RUN_ID or --best ENV (one of them)", file=sys.stderr)
        return 2
    try:
        if args.command not in READ_ONLY_COMMANDS:
            check_runs_folder(args)
        return args.handler(args)
    except UserError as error:  # messages may quote a driver's error, and drivers quote URLs
        print(f"infertune: error: {redact_text(str(error))}", file=sys.stderr)
        return UserError.exit_code
    except EveryConfigFails as error:
        print(f"infertune: error: {redact_text(str(error))}", file=sys.stderr)
        return 1
    except OSError as error:
        if error.errno not in NO_SPACE:
            raise
        run = getattr(args, "active_run", None)
        again = f"; free space, then: infertune tune {args.env} --resume {run}" if run else ""
        print(f"infertune: error: no space left writing {error.filename or 'a run file'} ({error.strerror}); "
              f"every record written before is intact{again}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        run = getattr(args, "active_run", None)
        again = f"; resume with: infertune tune {args.env} --resume {run}" if run else ""
        print(f"infertune: interrupted; every finished measurement is in records.jsonl{again}", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
