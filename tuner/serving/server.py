"""A serving engine as a real HTTP server: its own process group on 127.0.0.1, health-checked, stopped whole."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tuner.measure.interrupts import die_with_parent

HEALTH_POLL_S = 0.25
STOP_GRACE_S = 5.0


class ServerFailed(Exception):
    """The server did not come up or died: ``status`` is a measurement status (crash, timeout, error)."""

    def __init__(self, status: str, message: str, log_tail: list[str]):
        super().__init__(message)
        self.status = status
        self.log_tail = log_tail


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def die_with_parent_process() -> None:
    """In the child before exec: be killed when the process that started it dies, even by SIGKILL (no orphan)."""
    die_with_parent(signal.SIGKILL)


def log_tail(path: Path, lines: int = 20) -> list[str]:
    """The last ``lines`` lines of a server log (empty when there is none)."""
    try:
        return path.read_text(errors="replace").splitlines()[-lines:]
    except OSError:
        return []


@dataclass
class RunningServer:
    """A started server: where it listens, its process (leader of its own group) and its log."""

    host: str
    port: int
    process: subprocess.Popen
    log_path: Path
    started_s: float = 0.0  # seconds from launch until healthy
    identity: str = ""  # the engine settings it was started with (a server is reused only for the same)
    extra: dict = field(default_factory=dict)

    @property
    def base_url(self) -> str:
        """``http://host:port``."""
        return f"http://{self.host}:{self.port}"

    def alive(self) -> bool:
        """Whether the server process is still running."""
        return self.process.poll() is None

    def tail(self, lines: int = 20) -> list[str]:
        """The end of its log."""
        return log_tail(self.log_path, lines)

    def stop(self) -> None:
        """SIGTERM to the whole group, SIGKILL after a grace period; returns once the leader is reaped."""
        _signal_group(self.process, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_S)
        _signal_group(self.process, signal.SIGKILL)  # also any child the leader left behind
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=STOP_GRACE_S)


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signum)


def healthy(url: str, timeout_s: float = 2.0) -> bool:
    """Whether ``url`` answers 200."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:  # noqa: S310 - our own 127.0.0.1 server
            return response.status == 200
    except (urllib.error.URLError, OSError, ValueError):
        return False


def start_server(argv: Sequence[str], *, port: int, log_path: Path, timeout_s: float,
                 env: dict[str, str] | None = None, host: str = "127.0.0.1", health_path: str = "/health",
                 identity: str = "") -> RunningServer:
    """Launch ``argv`` in its own process group and wait until ``health_path`` answers 200.

    Raises ``ServerFailed``: ``crash`` when the process exits first (a port already in use ends here too, with the
    engine's own message in the log tail), ``timeout`` when it is not healthy within ``timeout_s`` (then killed).
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    launched = time.perf_counter()
    with open(log_path, "ab") as log:
        process = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   env={**os.environ, **(env or {})}, start_new_session=True,
                                   preexec_fn=die_with_parent_process)  # noqa: PLW1509 - only prctl, no locks taken
    server = RunningServer(host, port, process, log_path, identity=identity)
    deadline = launched + timeout_s
    while time.perf_counter() < deadline:
        if not server.alive():
            server.stop()
            raise ServerFailed("crash", f"the server exited with code {process.returncode} before it was healthy",
                               server.tail())
        if healthy(f"{server.base_url}{health_path}"):
            server.started_s = time.perf_counter() - launched
            return server
        time.sleep(HEALTH_POLL_S)
    server.stop()
    raise ServerFailed("timeout", f"the server was not healthy within {timeout_s:.0f} s", server.tail())
