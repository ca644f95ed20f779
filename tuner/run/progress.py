"""The live line of the trial being measured: n/N, its config, its phase and time in it, the run's ETA.

With a time budget the ETA is the earlier of the budget's (trial times × measurements left) and the time left,
and the line says when it is the time budget's.

On a terminal a ``rich`` live line redraws in place (and disappears when the trial's result line is printed);
without one (CI, ``| tee``) plain timestamped lines are printed instead: one per phase, and one at least every
``quiet_s`` seconds while a phase lasts, so nothing goes silent for long.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from tuner.util.errors import ConfigError
from tuner.util.formatting import config_text

QUIET_S = 10.0  # the longest a phase may go without a line, off a terminal ($INFERTUNE_PROGRESS_S overrides)
DETAIL_EVERY_S = 3.0  # off a terminal: a phase's changing details (repeat k of N) at most this often


def quiet_from_environment() -> float:
    """$INFERTUNE_PROGRESS_S (seconds, > 0), else QUIET_S; a one-line error for anything else."""
    text = os.environ.get("INFERTUNE_PROGRESS_S")
    if not text:
        return QUIET_S
    try:
        seconds = float(text)
    except ValueError:
        seconds = math.nan
    if not seconds > 0 or math.isinf(seconds):
        raise ConfigError("must be a positive number of seconds", field="INFERTUNE_PROGRESS_S", value=text)
    return seconds


def _minutes(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}m{seconds % 60:02d}s" if seconds >= 60 else f"{seconds}s"


def phase_text(event: dict[str, Any]) -> str:
    """A phase event in words: 'timing repeats: repeat 2 of at most 6, spread 3.1%'."""
    details = []
    if event.get("repeat") is not None:
        details.append(f"repeat {event['repeat']} of at most {event.get('of', '?')}")
    if event.get("spread") is not None:
        details.append(f"spread of the last passes {100 * event['spread']:.1f}%")
    if event.get("graphs"):  # the count moves when a graph is done: nothing to say while the first compiles
        details.append(f"{event['graphs']} graphs compiled so far")
    return event.get("phase", "measuring") + (f": {', '.join(details)}" if details else "")


class TrialProgress:
    """Shows the measurement in flight; ``begin``/``phase``/``end`` come from the Evaluator, thread-safe."""

    def __init__(self, out: TextIO, budget: int | None, spent: Callable[[], int], live: bool | None = None,
                 quiet_s: float | None = None, clock: Callable[[], float] = time.monotonic, announce: bool = True,
                 time_left: Callable[[], float | None] | None = None):
        self.out = out
        self.budget = budget
        self.spent = spent
        self.live = out.isatty() if live is None else live
        self.quiet_s = quiet_s if quiet_s is not None else quiet_from_environment()
        self.clock = clock
        self.announce = announce  # off a terminal: a line naming the config when its measurement starts
        self.time_left = time_left  # seconds of the run's time budget left (None: no time budget)
        self.durations: list[float] = []  # seconds of each measured trial so far: the ETA's basis
        self._lock = threading.Lock()
        self._trial: tuple[int, dict[str, Any]] | None = None
        self._started = 0.0
        self._phase: dict[str, Any] = {}
        self._phase_started = 0.0
        self._printed = 0.0
        self._live_display: Any = None
        self._ticker: threading.Thread | None = None
        self._stop = threading.Event()

    # -- what the Evaluator calls -------------------------------------------------------------------------------

    def begin(self, trial: int, config: dict[str, Any]) -> None:
        """A measurement of ``config`` starts."""
        with self._lock:
            self._trial = (trial, dict(config))
            self._started = self._phase_started = self._printed = self.clock()
            self._phase = {"phase": "sending the config to the worker"}
        if self.live:
            from rich.console import Console
            from rich.live import Live

            self._live_display = Live(self, console=Console(file=self.out), refresh_per_second=4, transient=True)
            self._live_display.start()
        else:
            if self.announce:
                self._emit(f"{self._position()} trial {trial}: measuring {config_text(config)}")
            self._stop.clear()
            self._ticker = threading.Thread(target=self._tick, daemon=True, name="infertune-progress")
            self._ticker.start()

    def phase(self, event: dict[str, Any]) -> None:
        """The worker entered a phase, or told more about the current one (a heartbeat, the next repeat)."""
        with self._lock:
            if self._trial is None:
                return
            now = self.clock()
            new_phase = event.get("phase") != self._phase.get("phase")
            changed = {key: value for key, value in event.items() if key not in ("since", "heartbeat", "event")} != {
                key: value for key, value in self._phase.items() if key not in ("since", "heartbeat", "event")}
            if new_phase:
                self._phase_started = now
            self._phase = dict(event)
            due = new_phase or (changed and now - self._printed >= DETAIL_EVERY_S) or now - self._printed >= \
                self.quiet_s
        if due and not self.live:
            self._emit(self._phase_line())

    def end(self) -> None:
        """The measurement's reply is in (the trial's own result line follows from the caller)."""
        with self._lock:
            if self._trial is None:
                return
            self.durations.append(self.clock() - self._started)
            self._trial = None
        self._stop.set()
        if self._ticker is not None:
            self._ticker.join()
            self._ticker = None
        if self._live_display is not None:
            self._live_display.stop()
            self._live_display = None

    # -- rendering ----------------------------------------------------------------------------------------------

    def eta_s(self) -> float | None:
        """Seconds left for the run: the mean measured trial times the measurements still to make after this one,
        plus what this one has left by the same mean; None before the first trial ended or without a budget."""
        if not self.durations or self.budget is None:
            return None
        mean = sum(self.durations) / len(self.durations)
        left_after = max(0, self.budget - self.spent() - 1)
        current = max(0.0, mean - (self.clock() - self._started)) if self._trial else 0.0
        return mean * left_after + current

    def eta(self) -> tuple[float, bool] | None:
        """(seconds left for the run, whether the time budget sets it): the earlier of ``eta_s`` and the time left."""
        eta = self.eta_s()
        left = self.time_left() if self.time_left is not None else None
        if left is not None and (eta is None or left < eta):
            return max(0.0, left), True
        return (eta, False) if eta is not None else None

    def _position(self) -> str:
        done = self.spent()
        return f"[{done + 1}/{self.budget}]" if self.budget else f"[{done + 1}]"

    def _phase_line(self) -> str:
        now = self.clock()
        eta = self.eta()
        return (f"{self._position()} trial {self._trial[0] if self._trial else '?'}: {phase_text(self._phase)} "
                f"({_minutes(now - self._phase_started)} in this phase, {_minutes(now - self._started)} in the trial"
                + (f"; run ETA {_minutes(eta[0])}" + (", time budget" if eta[1] else "") if eta else "") + ")")

    def __rich__(self) -> Any:
        from rich.text import Text

        with self._lock:
            if self._trial is None:
                return Text("")
            config = config_text(self._trial[1])
            return Text(f"{self._phase_line()}\n  {config}", no_wrap=False)

    def _emit(self, text: str) -> None:
        with self._lock:
            self._printed = self.clock()
            print(f"{time.strftime('%H:%M:%S')} {text}", file=self.out, flush=True)

    def _tick(self) -> None:
        """Off a terminal: a line at least every ``quiet_s`` seconds while the trial runs, whatever the worker says."""
        while not self._stop.wait(1.0):
            with self._lock:
                quiet = self._trial is not None and self.clock() - self._printed >= self.quiet_s
            if quiet:
                self._emit(self._phase_line())
