"""Parent side of the worker: start it, send a request, wait under a timeout, kill and restart on failure.

The parent never imports torch or touches CUDA; the worker runs in its own process group so a timeout
kills it together with anything it started.
"""

from __future__ import annotations

import collections
import contextlib
import os
import select
import signal
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import Any

from tuner.measure.feasibility import Machine, runnable_values
from tuner.measure.fingerprint import fingerprint
from tuner.measure.protocol import decode, encode, error_payload
from tuner.records import Status
from tuner.space import SearchSpace

LOG_LINES = 40
_LIVE_WORKERS: weakref.WeakSet[WorkerClient] = weakref.WeakSet()  # every client that started a worker


_STOPPING: list[bool] = []  # set by an interrupt: no worker may start after it, until a new command allows it


def kill_every_worker() -> None:
    """SIGKILL every live worker's process group now, without waiting (safe in a SIGINT/SIGTERM handler); no
    worker starts after this, so an interrupt a library swallowed between two measurements still ends the run."""
    _STOPPING[:] = [True]
    for client in list(_LIVE_WORKERS):
        client.kill_group()


def allow_workers() -> None:
    """A new command in this process (tests call main() many times) may start workers again."""
    _STOPPING.clear()


class WorkerClient:
    """The HF measurer: one live worker process (sharded configs fan out from it), replaced when it dies or hangs."""

    def __init__(self, startup_timeout_s: float = 300.0, env: dict[str, str] | None = None, echo: bool = False,
                 device: str = "cpu"):
        self.startup_timeout_s = startup_timeout_s
        self.env = env
        self.echo = echo
        self.device = device
        # read in the worker's environment: CUDA_VISIBLE_DEVICES there decides what it measures on
        self.fingerprint = fingerprint(device, self._environment())
        self.process: subprocess.Popen | None = None
        self._reply_fd: int | None = None
        self._buffer = b""
        self._log: collections.deque[str] = collections.deque(maxlen=LOG_LINES)
        self._next_id = 0
        self.starts = 0

    @property
    def pid(self) -> int | None:
        """PID of the live worker, if any."""
        return self.process.pid if self.process and self.process.poll() is None else None

    def _environment(self) -> dict[str, str]:
        return {**os.environ, **(self.env or {}), "PYTHONUNBUFFERED": "1"}

    def runnable_values(self, space: SearchSpace) -> dict[str, list[Any]]:
        """Per knob, the values the worker's device and libraries can run (others are infeasible)."""
        return runnable_values(space, Machine.here(self.device, self._environment()))

    def _drain(self, stream: Any) -> None:
        for raw in iter(stream.readline, b""):
            line = raw.decode(errors="replace").rstrip()
            self._log.append(line)
            if self.echo:
                print(f"[worker] {line}", file=sys.stderr)
        stream.close()

    def start(self) -> dict[str, Any] | None:
        """Start a worker; None when it is ready, else a failure reply (crash or timeout)."""
        if _STOPPING:  # interrupted: the KeyboardInterrupt was lost on its way up (e.g. in a finalizer)
            raise KeyboardInterrupt
        read_fd, write_fd = os.pipe()
        env = self._environment()
        self._log.clear()
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tuner.measure.worker", "--reply-fd", str(write_fd)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, pass_fds=(write_fd,),
            start_new_session=True, env=env,
        )
        os.close(write_fd)
        _LIVE_WORKERS.add(self)
        self._reply_fd, self._buffer = read_fd, b""
        self.starts += 1
        threading.Thread(target=self._drain, args=(self.process.stdout,), daemon=True).start()
        hello = self._receive(self.startup_timeout_s)
        return None if hello.get("event") == "ready" else hello

    def _receive(self, timeout_s: float, on_phase: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """The next reply, or a synthesized crash/timeout reply; phase events on the way go to ``on_phase``."""
        deadline = time.monotonic() + timeout_s
        while True:
            while b"\n" not in self._buffer:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    self.kill()
                    return self._failure(Status.TIMEOUT, "Timeout",
                                         f"no answer within {timeout_s:.0f} s; worker process group killed")
                ready, _, _ = select.select([self._reply_fd], [], [], remaining)
                if not ready:
                    continue
                chunk = os.read(self._reply_fd, 1 << 16)
                if not chunk:
                    return self._died()
                self._buffer += chunk
            line, _, self._buffer = self._buffer.partition(b"\n")
            message = decode(line)
            if message.get("event") != "phase":
                return message
            if on_phase is not None:
                on_phase(message)

    def _died(self) -> dict[str, Any]:
        code = self.process.wait() if self.process else None
        self._close_fds()
        time.sleep(0.05)  # let the log thread read the last lines the worker printed
        how = f"killed by {signal.Signals(-code).name}" if code is not None and code < 0 else f"exited with code {code}"
        return self._failure(Status.CRASH, "WorkerDied", f"worker process {how}", exit_code=code)

    def _failure(self, status: Status, kind: str, message: str, exit_code: int | None = None) -> dict[str, Any]:
        return {"status": status.value, "metrics": {}, "info": {}, "restart": True,
                "error": error_payload(kind, message, log_tail=list(self._log)[-15:], exit_code=exit_code)}

    def request(self, payload: dict[str, Any], timeout_s: float,
                on_phase: Callable[[dict[str, Any]], None] | None = None) -> dict[str, Any]:
        """Send one measurement request and return the reply; never raises for worker failures.

        ``on_phase`` hears where the measurement is as it goes (design §5 phases: loading, warmup, repeats, ...).
        """
        if self.pid is None:
            if on_phase is not None:
                on_phase({"event": "phase", "phase": "starting the measuring worker", "since": time.time()})
            failure = self.start()
            if failure is not None:
                return failure
        self._next_id += 1
        try:
            self.process.stdin.write(encode({**payload, "id": self._next_id}))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return self._died()
        reply = self._receive(timeout_s, on_phase)
        if reply.get("restart"):
            self.kill()
        return reply

    def kill_group(self) -> None:
        """SIGKILL the worker's process group, nothing else: ``kill`` or ``close`` reaps it later."""
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, signal.SIGKILL)

    def kill(self) -> None:
        """Kill the worker's whole process group and reap it."""
        if self.process is None:
            return
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait()
        self._close_fds()

    def _close_fds(self) -> None:
        if self._reply_fd is not None:
            os.close(self._reply_fd)
            self._reply_fd = None
        if self.process is not None and self.process.stdin and not self.process.stdin.closed:
            with contextlib.suppress(OSError):
                self.process.stdin.close()

    def close(self) -> None:
        """Ask the worker to exit, then make sure its process group is gone."""
        if self.pid is not None:
            try:
                self.process.stdin.write(encode({"op": "shutdown"}))
                self.process.stdin.flush()
                self.process.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.kill()
        self.process = None
