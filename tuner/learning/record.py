"""Record library landscapes: every config of a task's space, appended to ``<task>.jsonl`` as it is measured.

    infertune record envs/recordings/library/NAME.yaml [...]

Resumable: a config already recorded (ok, infeasible or failed) is skipped, so a long grid is recorded in
chunks; an ``unstable`` one is measured again (it never counts as the config's figure) and the better copy wins
when the landscape is loaded. Prints how long each landscape took to record.

A landscape is recorded on a quiet machine: a config measured while other processes used more than
``--max-foreign-cpu`` cores (its record's ``foreign_cpu_cores``) is not written to the landscape. The recorder
waits for the machine to be quiet and measures it again, up to ``--attempts`` times in all, then leaves it for
a later run. Every attempt stays in the run's records.jsonl.
"""

from __future__ import annotations

import time
from pathlib import Path

from tuner.evaluation.evaluator import Evaluator
from tuner.measure.backends.replay import read_recording
from tuner.measure.contention import QUIET_CORES, foreign_cores_now
from tuner.records import Record, append_record, config_key
from tuner.task import load_task

QUIET_WAIT_S = 600.0  # at most this long waiting for quiet before an attempt is made anyway
QUIET_SAMPLE_S = 5.0


def record_landscape(task_file: Path, runs_dir: Path, missing_only: bool = False,
                     max_foreign_cores: float | None = QUIET_CORES, attempts: int = 3,
                     quiet_wait_s: float = QUIET_WAIT_S) -> tuple[int, float]:
    """Measure what is missing from ``task_file``'s landscape; (configs measured now, seconds recorded in all).

    Unstable configs are measured again unless ``missing_only`` (then only configs with no record at all are).
    A config measured on a busy machine is measured again (``max_foreign_cores``: None accepts any).
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
            shown = " ".join(f"{name}={value}" for name, value in config.items())
            where = f"{task.id} [{position}/{len(configs)}]"
            record = _measure_on_a_quiet_machine(evaluator, config, where, max_foreign_cores, attempts, quiet_wait_s)
            if record is None:
                print(f"{where} left for a later run: the machine was busy in all {attempts} attempts: {shown}",
                      flush=True)
                continue
            append_record(target, record)
            measured += 1
            print(f"{where} {record.status} in {time.perf_counter() - started:.1f} s: {shown}", flush=True)
    total = sum(row.get("duration_s") or 0.0 for row in (read_recording(target) if target.is_file() else []))
    return measured, total


def _measure_on_a_quiet_machine(evaluator: Evaluator, config: dict, where: str, max_foreign_cores: float | None,
                                attempts: int, quiet_wait_s: float) -> Record | None:
    """The config's record from a measurement no other process disturbed; None if every attempt was disturbed."""
    use_cache = evaluator.use_cache
    try:
        for attempt in range(1, attempts + 1):
            record = evaluator.evaluate(config)
            foreign = record.info.get("foreign_cpu_cores")
            if max_foreign_cores is None or foreign is None or foreign <= max_foreign_cores:
                return record
            print(f"{where} other processes used {foreign:.2f} CPU cores while it was measured (attempt {attempt} "
                  f"of {attempts}, at most {max_foreign_cores:g} allowed)", flush=True)
            if attempt < attempts:
                _wait_for_quiet(evaluator, where, max_foreign_cores, quiet_wait_s)
                evaluator.use_cache = False  # the disturbed figures may be in the cache: measure live
        return None
    finally:
        evaluator.use_cache = use_cache


def _wait_for_quiet(evaluator: Evaluator, where: str, max_foreign_cores: float, quiet_wait_s: float) -> None:
    """Sleep until other processes use at most ``max_foreign_cores`` over a few seconds, or ``quiet_wait_s`` passes."""
    deadline = time.monotonic() + quiet_wait_s
    while time.monotonic() < deadline:
        foreign = foreign_cores_now(min(QUIET_SAMPLE_S, quiet_wait_s), evaluator.measuring_groups)
        if foreign is None or foreign <= max_foreign_cores:
            return
        print(f"{where} waiting for a quiet machine (other processes use {foreign:.2f} CPU cores)", flush=True)
