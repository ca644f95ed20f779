"""Test-only fault injection inside the worker: raise, die by a signal, allocate until OOM, hang.

Honoured only when the worker's environment sets ``INFERTUNE_ENABLE_FAULTS=1``, so a stray request field
can never break a real run.
"""

from __future__ import annotations

import os
import random
import resource
import signal
import time

FAULTS = ("raise", "signal", "oom", "hang")
ENABLE_VARIABLE = "INFERTUNE_ENABLE_FAULTS"
KILL_AFTER_VARIABLE = "INFERTUNE_KILL_AFTER_RECORDS"  # the tuner SIGKILLs itself once it wrote this many
REPLAY_DELAY_VARIABLE = "INFERTUNE_REPLAY_DELAY_S"  # a replayed measurement takes this long (kill it mid-trial)
TIMING_NOISE_VARIABLE = "INFERTUNE_TIMING_NOISE"  # "1": every other timed pass stalls, so no 3 passes agree


class InjectedError(RuntimeError):
    """The exception the ``raise`` fault throws."""


def faults_enabled() -> bool:
    """Whether this process may inject faults."""
    return os.environ.get(ENABLE_VARIABLE) == "1"


def _allocate_until_failure() -> None:
    import torch

    # Cap the address space a little above what is mapped now, so the allocation fails in this process
    # instead of waking the kernel's OOM killer on the whole machine.
    with open("/proc/self/statm") as statm:
        mapped = int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    resource.setrlimit(resource.RLIMIT_AS, (mapped + (2 << 30), resource.RLIM_INFINITY))
    hoard = []
    while True:
        hoard.append(torch.ones(64 << 20, dtype=torch.float32))  # 256 MiB at a time, touched


def split_rank_fault(fault: str | None) -> tuple[str | None, tuple[int, str] | None]:
    """``rank1:signal`` targets tensor-parallel rank 1: (None, (1, "signal")); else (fault, None)."""
    if fault and fault.startswith("rank") and ":" in fault:
        rank, _, kind = fault.partition(":")
        return None, (int(rank.removeprefix("rank")), kind)
    return fault, None


def inject(fault: str | None) -> None:
    """Trigger ``fault`` (no-op when None or faults are disabled)."""
    if not fault or not faults_enabled():
        return
    if fault == "raise":
        raise InjectedError("fault injected: raise")
    if fault == "signal":
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an abort, but no core file on disk
        os.kill(os.getpid(), signal.SIGABRT)
    if fault == "oom":
        _allocate_until_failure()
    if fault == "hang":
        while True:
            time.sleep(3600)
    raise ValueError(f"unknown fault {fault!r}; known: {', '.join(FAULTS)}")


def after_record(written: int) -> None:
    """Die by SIGKILL, as ``kill -9`` would, once ``written`` records are on disk (when asked to)."""
    if faults_enabled() and os.environ.get(KILL_AFTER_VARIABLE) == str(written):
        os.kill(os.getpid(), signal.SIGKILL)  # the worker sees its stdin close and exits by itself


def replay_delay() -> None:
    """Sleep as long as a replayed measurement is asked to take (distributed tests kill a worker mid-trial)."""
    if faults_enabled():
        time.sleep(float(os.environ.get(REPLAY_DELAY_VARIABLE, "0")))


def timing_noise(pass_index: int, pass_s: float) -> float:
    """Seconds to stall inside timed pass ``pass_index`` (about ``pass_s`` long): 0 unless noise is injected.

    Odd passes stall 50-100% of a pass, so any 3 consecutive passes differ by far more than 10% and the
    measurement ends ``unstable``, as on a machine that something else keeps busy.
    """
    if not faults_enabled() or os.environ.get(TIMING_NOISE_VARIABLE) != "1" or pass_index % 2 == 0:
        return 0.0
    return pass_s * random.uniform(0.5, 1.0)
