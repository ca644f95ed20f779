"""How much CPU other processes used while a config was measured: the sign that its timings are not its own."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path

PROC = Path("/proc")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
QUIET_CORES = 0.25  # other processes' CPU use a landscape tolerates: a shell, a browser tab, not a test suite


def machine_busy_seconds() -> float | None:
    """CPU seconds all cores spent running anything since boot (user, nice, system, irq, softirq); None off Linux."""
    try:
        fields = (PROC / "stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return None
    user, nice, system, _idle, _iowait, irq, softirq = (int(value) for value in fields[1:8])
    return (user + nice + system + irq + softirq) / CLOCK_TICKS


def _stat_fields(pid_dir: Path) -> list[str] | None:
    try:
        # the command name in parentheses may hold spaces: the fields start after its closing parenthesis
        return (pid_dir / "stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def _cpu_seconds(fields: list[str]) -> float:
    """utime + stime, and the same of the children it reaped (cutime + cstime)."""
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def own_seconds(groups: Iterable[int], pids: Iterable[int]) -> float:
    """CPU seconds used by the live processes of the process ``groups`` and by the processes ``pids``."""
    groups, pids = set(groups), set(pids)
    total = 0.0
    for pid_dir in PROC.iterdir():
        if not pid_dir.name.isdigit():
            continue
        fields = _stat_fields(pid_dir)
        if fields is not None and (int(fields[2]) in groups or int(pid_dir.name) in pids):
            total += _cpu_seconds(fields)
    return total


class ForeignLoad:
    """CPU cores that processes other than ours used, on average, between ``start()`` and ``stop()``.

    Ours are this process and the process groups ``own_groups()`` names when asked (the measuring worker leads
    its own group, its tensor-parallel ranks included), read at the start and at the end. ``stop()`` is None where
    /proc is missing.
    """

    def __init__(self, own_groups: Callable[[], Iterable[int]] = tuple):
        self.own_groups = own_groups
        self._start: tuple[float, float, float] | None = None

    def _sample(self) -> tuple[float, float, float] | None:
        busy = machine_busy_seconds()
        if busy is None:
            return None
        return busy, own_seconds(self.own_groups(), [os.getpid()]), time.monotonic()

    def start(self) -> ForeignLoad:
        self._start = self._sample()
        return self

    def stop(self) -> float | None:
        end = self._sample()
        if self._start is None or end is None:
            return None
        (busy0, ours0, at0), (busy1, ours1, at1) = self._start, end
        wall = at1 - at0
        if wall <= 0:
            return None
        # a process of ours that ended inside the window takes its seconds with it: they then count as foreign,
        # which errs towards calling a measurement contended, never towards trusting it
        return max(0.0, (busy1 - busy0) - (ours1 - ours0)) / wall


def foreign_cores_now(seconds: float, own_groups: Callable[[], Iterable[int]] = tuple) -> float | None:
    """Other processes' CPU use over the next ``seconds`` (in cores), waiting that long."""
    load = ForeignLoad(own_groups).start()
    time.sleep(seconds)
    return load.stop()
