"""How much CPU other processes used while a config was measured: the sign that its timings are not its own."""

from __future__ import annotations

import math
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from tuner.util.errors import ConfigError

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


QUIET_WAIT_S = 60.0  # the longest ``tune`` waits for a quiet machine before measuring a disturbed config again
QUIET_SAMPLE_S = 5.0
FOREIGN_LIMIT_VARIABLE = "INFERTUNE_MAX_FOREIGN_CPU"  # cores, or "none" (a machine known to be shared, e.g. CI)


@dataclass(frozen=True)
class QuietRule:
    """When a measurement is disturbed (other processes used more than ``max_foreign_cores`` meanwhile), and how
    often it is measured again, each time after waiting up to ``wait_s`` for the machine to be quiet."""

    max_foreign_cores: float = QUIET_CORES
    retries: int = 1
    wait_s: float = QUIET_WAIT_S

    @classmethod
    def from_environment(cls) -> QuietRule | None:
        """The default rule, its limit from $INFERTUNE_MAX_FOREIGN_CPU ('none': never measure again); a one-line
        error for a value that is neither."""
        text = os.environ.get(FOREIGN_LIMIT_VARIABLE, "").strip()
        if not text:
            return cls()
        if text == "none":
            return None
        try:
            cores = float(text)
        except ValueError:
            cores = math.nan
        if not cores >= 0 or math.isinf(cores):
            raise ConfigError("must be a number of CPU cores from 0, or 'none'", field=FOREIGN_LIMIT_VARIABLE,
                              value=text)
        return cls(max_foreign_cores=cores)

    def disturbed(self, foreign: float | None) -> bool:
        """Whether a measurement during which others used ``foreign`` cores is not its config's own."""
        return foreign is not None and foreign > self.max_foreign_cores

    def wait_for_quiet(self, own_groups: Callable[[], Iterable[int]] = tuple) -> float | None:
        """Sleep until other processes use at most the limit over a few seconds, or ``wait_s`` passes; their use."""
        deadline = time.monotonic() + self.wait_s
        foreign = None
        while time.monotonic() < deadline:
            foreign = foreign_cores_now(min(QUIET_SAMPLE_S, self.wait_s), own_groups)
            if not self.disturbed(foreign):
                break
        return foreign
