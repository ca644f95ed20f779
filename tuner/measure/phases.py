"""Where a measurement is, told to the parent as it goes: loading, starting ranks, warmup, repeat k of N, scoring.

The measuring process installs a sink (the worker: its reply pipe; a tensor-parallel rank 0: its connection to the
worker); code anywhere in a measurement calls ``enter`` when a phase begins and ``update`` as it progresses. While a
phase lasts, a heartbeat sends it again every few seconds with fresh details (graphs compiled so far), so the parent
hears from a long compile before it ends. Without a sink every call is a no-op.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from typing import Any

HEARTBEAT_S = 5.0

LOCK = threading.RLock()  # whoever writes to the sink's pipe holds it: a reply must not interleave with a heartbeat
_lock = LOCK
_sink: Callable[[dict[str, Any]], None] | None = None
_current: dict[str, Any] | None = None
_probe: Callable[[], dict[str, Any]] | None = None
_heartbeat: threading.Thread | None = None


def install(sink: Callable[[dict[str, Any]], None] | None, heartbeat_s: float = HEARTBEAT_S) -> None:
    """Send phase events with ``sink`` (None: stop sending); a daemon thread repeats the current phase."""
    global _sink, _heartbeat
    with _lock:
        _sink = sink
    if sink is not None and _heartbeat is None:
        _heartbeat = threading.Thread(target=_beat, args=(heartbeat_s,), daemon=True, name="infertune-phases")
        _heartbeat.start()


def _send(event: dict[str, Any]) -> None:
    """Send under the lock: the heartbeat thread and the measuring thread share one pipe."""
    with _lock:
        if _sink is not None:
            with contextlib.suppress(OSError, ValueError):  # the parent is gone: the measurement will notice
                _sink(event)


def enter(phase: str, probe: Callable[[], dict[str, Any]] | None = None, **details: Any) -> None:
    """The measurement is now in ``phase``; ``probe`` gives details fresh at each heartbeat (e.g. graphs so far)."""
    global _current, _probe
    _current, _probe = {"event": "phase", "phase": phase, "since": time.time(), **details}, probe
    _send(_current)


def update(**details: Any) -> None:
    """New details of the current phase (repeat 2 of 6, spread so far), sent now."""
    global _current
    if _current is not None:
        _current = {**_current, **details}
        _send(_current)


def leave() -> None:
    """No phase any more (the measurement's reply follows)."""
    global _current, _probe
    _current, _probe = None, None


def forward(event: dict[str, Any]) -> None:
    """Pass on a phase event from a child process (a tensor-parallel rank) as this process's own."""
    global _current, _probe
    _current, _probe = dict(event), None
    _send(_current)


def _beat(interval_s: float) -> None:
    while True:
        time.sleep(interval_s)
        current, probe = _current, _probe
        if current is None:
            continue
        try:
            fresh = {**current, **(probe() if probe is not None else {})}
        except Exception:  # a probe is best effort: the phase itself still goes out
            fresh = current
        with _lock:
            if _current is current:  # not left meanwhile: a heartbeat after the reply would describe nothing
                _send({**fresh, "heartbeat": True})
