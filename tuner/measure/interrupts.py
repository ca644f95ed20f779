"""SIGINT and SIGTERM end a process of the tool alike: measuring workers killed at once, then Ctrl-C's unwinding."""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys
import threading
import time
from types import FrameType

from tuner.measure.launcher import allow_workers, kill_every_worker

PR_SET_PDEATHSIG = 1
REPEAT_WINDOW_S = 10.0  # a second signal within this of the first only kills workers again; a later one raises
_first_interrupt: list[float] = []  # monotonic time of the interrupt being unwound (empty: none)


def _ignore_unraisable(unraisable: sys.UnraisableHookArgs) -> None:
    """After an interrupt, objects it cut off mid-update (a SQLAlchemy session) fail in finalizers: say nothing."""


def _interrupted(signum: int, frame: FrameType | None) -> None:
    """SIGINT or SIGTERM: kill the measuring workers at once, then unwind as Ctrl-C does (once: a second signal
    while the first unwinds, as from ``pkill`` twice or an impatient Ctrl-C, would break the one-line goodbye)."""
    kill_every_worker()
    now = time.monotonic()
    if _first_interrupt and now - _first_interrupt[0] < REPEAT_WINDOW_S:
        return
    _first_interrupt[:] = [now]  # a later one raises again: the first may have been swallowed by a finalizer
    # the interrupt may land inside a library's bookkeeping; its finalizers would print tracebacks on the way out
    sys.unraisablehook = _ignore_unraisable
    raise KeyboardInterrupt


def die_with_parent(signum: int) -> None:
    """Have the kernel send ``signum`` to this process when its parent dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):  # not Linux: the parent's own cleanup still runs
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


def handle_interrupts() -> None:
    """SIGTERM (a scheduler, ``kill``, ``timeout``) ends a run as Ctrl-C does; both kill the worker at once."""
    if threading.current_thread() is not threading.main_thread():
        return  # signal handlers can only be set from the main thread (main() called in-process by a thread)
    _first_interrupt.clear()  # a new command in this process (tests call main() many times)
    allow_workers()
    for signum in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(signum) is not signal.SIG_IGN:  # ignored by who started us (a script's & job): stays so
            signal.signal(signum, _interrupted)
