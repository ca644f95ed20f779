"""Other processes' CPU use is measured beside every config, and a landscape takes no config measured on a busy
machine."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

from tests.helpers import TINY
from tuner.learning.record import record_landscape
from tuner.measure.contention import ForeignLoad


@contextlib.contextmanager
def busy_processes(count: int) -> Iterator[list[int]]:
    """``count`` processes spinning on the CPU, each leading its own process group."""
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"], start_new_session=True)
                for _ in range(count)]
    try:
        time.sleep(0.3)  # past the interpreter's start-up
        yield [spinner.pid for spinner in spinners]
    finally:
        for spinner in spinners:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(spinner.pid, signal.SIGKILL)
            spinner.wait()


def test_a_busy_process_is_foreign_load_unless_its_group_is_ours():
    with busy_processes(1) as (spinner,):
        everyone_else = ForeignLoad(lambda: []).start()
        but_the_spinner = ForeignLoad(lambda: [spinner]).start()
        time.sleep(2.0)
        with_spinner, without_spinner = everyone_else.stop(), but_the_spinner.stop()
    # the spinner gets at least half a core even beside a second test process on two cores
    assert with_spinner is not None and without_spinner is not None
    assert with_spinner >= 0.5
    assert with_spinner - without_spinner >= 0.5


def one_config_task(folder: Path) -> Path:
    """The tiny task over a space of exactly one config."""
    space = folder / "space.yaml"
    space.write_text("id: one-config\nversion: 1\nknobs:\n  batch_size: {type: int, choices: [1]}\n"
                     "  dtype: {type: categorical, choices: [float32]}\n")
    task = folder / "one.yaml"
    task.write_text(TINY.read_text().replace("search_space: hf-transformers", f"search_space: {space}"))
    return task


def test_the_recorder_measures_again_what_a_busy_machine_disturbed_and_never_writes_it(tmp_path, capsys):
    task = one_config_task(tmp_path)
    landscape = task.with_suffix(".jsonl")
    with busy_processes(3):
        measured, _ = record_landscape(task, tmp_path / "runs", max_foreign_cores=0.5, attempts=2,
                                       quiet_wait_s=1.0)
    assert measured == 0 and not (landscape.is_file() and landscape.read_text().strip())
    printed = capsys.readouterr().out
    assert "left for a later run: the machine was busy in all 2 attempts" in printed
    attempts = [json.loads(line) for line in
                (tmp_path / "runs" / "library-tiny-cpu" / "records.jsonl").read_text().splitlines()]
    assert len(attempts) == 2 and all(row["info"]["foreign_cpu_cores"] > 0.5 for row in attempts)
    assert [row["cached"] for row in attempts] == [False, False]  # the retry is measured, not read back

    # the busy processes gone, a recorder that accepts any load writes the config
    measured, _ = record_landscape(task, tmp_path / "runs", max_foreign_cores=None)
    assert measured == 1
    (written,) = [json.loads(line) for line in landscape.read_text().splitlines()]
    assert written["status"] == "ok" and isinstance(written["info"]["foreign_cpu_cores"], float)
