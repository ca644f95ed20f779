"""``infertune record``: record library landscapes, every config of each task's space, resumably (design §14)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tuner.commands.common import runs_folder
from tuner.measure.contention import QUIET_CORES


def add_parser(commands: argparse._SubParsersAction) -> None:
    """The ``record`` subcommand's arguments, bound to its handler."""
    record = commands.add_parser("record", help="record landscapes for the library: every config of each task's "
                                 "space, appended to <task>.jsonl as it is measured (resumable)")
    record.add_argument("tasks", nargs="+", type=Path, metavar="TASK", help="task spec beside its landscape, e.g. "
                        "envs/recordings/library/NAME.yaml")
    record.add_argument("--missing-only", action="store_true",
                        help="measure only configs with no record (leave unstable ones as they are)")
    record.add_argument("--max-foreign-cpu", type=_cores, default=QUIET_CORES, metavar="CORES",
                        help="measure a config again when other processes used more CPU cores than this while it "
                             f"was measured ('none': never; default {QUIET_CORES})")
    record.add_argument("--attempts", type=_positive, default=3,
                        help="measurements of a config on a busy machine before it is left for a later run")
    record.set_defaults(handler=cmd_record)


def cmd_record(args: argparse.Namespace) -> int:
    """Record each landscape given; say how long each took in all."""
    from tuner.learning.record import record_landscape

    try:
        for task_file in args.tasks:
            measured, total = record_landscape(task_file, runs_folder(args), args.missing_only,
                                               args.max_foreign_cpu, args.attempts)
            print(f"{task_file.stem}: {measured} configs measured now; the landscape took {total / 60:.1f} min of "
                  f"measurement in all", flush=True)
    except KeyboardInterrupt:
        print("interrupted; every finished config is in its landscape's .jsonl (run again to go on)",
              file=sys.stderr)
        return 130
    return 0


def _cores(text: str) -> float | None:
    """A --max-foreign-cpu value: a number of CPU cores from 0, or 'none'."""
    if text == "none":
        return None
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"a number of CPU cores from 0, or 'none' (got {text!r})")
    return value


def _positive(text: str) -> int:
    """An --attempts value: a whole number from 1."""
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"a whole number from 1 (got {text!r})")
    return int(text)
