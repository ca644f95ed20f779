"""One process per run: an OS lock (flock) on ``run.lock`` in the run folder, held for the life of the process.

The kernel releases the lock when the holder exits in any way, ``kill -9`` included, so a stale lock file never
blocks a run; the file keeps the holder's pid, which a refused process names.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from tuner.util.errors import ConfigError

LOCK_FILE = "run.lock"
_held: dict[Path, int] = {}  # run folder -> open descriptor holding its lock, kept open until the process ends


def _holder(descriptor: int) -> str:
    """The pid the lock file names (the holder writes it right after locking), or 'unknown'."""
    for _ in range(20):
        text = os.pread(descriptor, 32, 0).decode(errors="replace").strip()
        if text.isdigit():
            return text
        time.sleep(0.05)
    return "unknown"


def hold_run(run_dir: Path, field: str) -> None:
    """Take the run's lock for this process, or a one-line ConfigError naming the pid that holds it."""
    run_dir = run_dir.resolve()
    if run_dir in _held:
        return
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError("a file of that name is in the runs folder, not a run", field=field, value=run_dir.name)
    run_dir.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by subprocesses
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pid = _holder(descriptor)
        os.close(descriptor)
        raise ConfigError(f"the run is in use by process {pid} (it holds {run_dir / LOCK_FILE}); wait for it to "
                          "end or stop it", field=field, value=run_dir.name) from None
    os.ftruncate(descriptor, 0)
    os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
    _held[run_dir] = descriptor

