"""Record library landscapes: every config of a task's space, appended to ``<task>.jsonl`` as it is measured.

    python -m tuner.library.record envs/recordings/library/NAME.yaml [...]  [--runs-dir runs]

Resumable: a config already recorded (ok, infeasible or failed) is skipped, so a long grid is recorded in
chunks; an ``unstable`` one is measured again (it never counts as the config's figure) and the better copy wins
when the landscape is loaded. Prints how long each landscape took to record.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from tuner.evaluator import Evaluator
from tuner.interrupts import handle_interrupts
from tuner.measure.backends.replay import config_key, read_recording
from tuner.records import append_record
from tuner.task import load_task


def record_landscape(task_file: Path, runs_dir: Path, missing_only: bool = False) -> tuple[int, float]:
    """Measure what is missing from ``task_file``'s landscape; (configs measured now, seconds recorded in all).

    Unstable configs are measured again unless ``missing_only`` (then only configs with no record at all are).
    """
    task = load_task(task_file)
    target = task_file.with_suffix(".jsonl")
    done = {config_key(row["config"]) for row in (read_recording(target) if target.is_file() else [])
            if missing_only or row["status"] != "unstable"}
    # Compiled configs last: they cost the most warm-up, so a cut-off recording has measured the most configs.
    configs = sorted(task.space.grid(), key=lambda config: bool(config.get("compile")))
    measured = 0
    with Evaluator(task, runs_dir / f"library-{task.id}", cache_dir=runs_dir / "cache") as evaluator:
        evaluator.describe()  # features for every record, the first one included (even if it is rejected)
        for position, config in enumerate(configs, start=1):
            if config_key(config) in done:
                continue
            started = time.perf_counter()
            record = evaluator.evaluate(config)
            append_record(target, record)
            measured += 1
            shown = " ".join(f"{name}={value}" for name, value in config.items())
            print(f"{task.id} [{position}/{len(configs)}] {record.status} in {time.perf_counter() - started:.1f} s: "
                  f"{shown}", flush=True)
    total = sum(row.get("duration_s") or 0.0 for row in read_recording(target))
    return measured, total


def main(argv: list[str]) -> int:
    """Record each landscape given; say how long each took in all."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("tasks", nargs="+", type=Path)
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--missing-only", action="store_true",
                        help="measure only configs with no record (leave unstable ones as they are)")
    args = parser.parse_args(argv)
    handle_interrupts()  # SIGTERM kills the measuring worker's group too, as in infertune measure
    try:
        for task_file in args.tasks:
            measured, total = record_landscape(task_file, args.runs_dir, args.missing_only)
            print(f"{task_file.stem}: {measured} configs measured now; the landscape took {total / 60:.1f} min of "
                  f"measurement in all", flush=True)
    except KeyboardInterrupt:
        print("interrupted; every finished config is in its landscape's .jsonl (run again to go on)",
              file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
