"""``infertune``: the command line, a thin composition root over tasks, spaces and the Evaluator."""

from __future__ import annotations

import argparse
import errno
import sys

from tuner.commands import (
    compare,
    envs,
    export,
    measure,
    pretrain,
    record,
    report,
    runs,
    show,
    spaces,
    sync,
    tune,
    ui,
)
from tuner.commands.common import OneLineErrorParser, check_runs_folder
from tuner.measure.interrupts import handle_interrupts
from tuner.util.errors import EveryConfigFails, UserError
from tuner.util.redact import install_redaction, redact_text

SUBCOMMANDS = (measure, record, pretrain, tune, compare, sync, export, ui, runs, show, report, spaces, envs)
READ_ONLY_COMMANDS = ("spaces", "envs", "runs", "show")  # the others write under the runs folder
NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)  # disk full, quota, file size limit


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = OneLineErrorParser(prog="infertune", description="Find the best inference config by measuring real runs.")
    parser.add_argument("--runs-dir", help="where runs, the measurement cache and converted models live "
                                           "(default: $INFERTUNE_RUNS_DIR or ./runs)")
    parser.add_argument("--tracking-uri", help="MLflow tracking URI (default: $MLFLOW_TRACKING_URI or SQLite under "
                                               "runs/)")
    commands = parser.add_subparsers(dest="command", required=True, parser_class=OneLineErrorParser)
    for subcommand in SUBCOMMANDS:
        subcommand.add_parser(commands)
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
