"""Worker side of tensor parallelism: start ``shard_count`` rank processes, send them a config, collect.

The ranks are spawned children of the worker, so they share its process group and die with it when the
launcher kills a hung measurement. Any rank failing poisons the whole group (the others may be blocked in
a collective), so the group is discarded and the next sharded config starts a fresh one.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from tuner.measure import phases

STARTUP_TIMEOUT_S = 300.0


class RankFailed(RuntimeError):
    """A rank raised, died or never started; the message says which rank and why."""

    def __init__(self, message: str, log_tail: list[str] | None = None, rank_died: bool = False):
        super().__init__(message)
        self.log_tail = log_tail or []
        self.rank_died = rank_died


class ShardGroup:
    """``world`` live rank processes on ``device`` (cpu: gloo, cuda: one GPU per rank, NCCL)."""

    def __init__(self, world: int, device: str):
        import torch.multiprocessing as mp

        from tuner.measure.backends.shard_rank import rank_main

        self.world, self.device = world, device
        self._folder = Path(tempfile.mkdtemp(prefix="infertune-tp-"))
        context = mp.get_context("spawn")  # fork after torch (and CUDA) are initialized is unsafe
        self._connections: list[Connection] = []
        self._processes = []
        for rank in range(world):
            parent_end, child_end = context.Pipe()
            process = context.Process(target=rank_main, daemon=True, name=f"infertune-rank{rank}",
                                      args=(rank, world, device, str(self._folder / "store"), child_end))
            process.start()
            child_end.close()
            self._connections.append(parent_end)
            self._processes.append(process)
        try:
            self._collect(STARTUP_TIMEOUT_S, expect="ready")
        except RankFailed:
            self.close(force=True)
            raise

    @property
    def alive(self) -> bool:
        """Whether every rank is still running."""
        return bool(self._processes) and all(process.is_alive() for process in self._processes)

    def _collect(self, timeout_s: float | None, expect: str) -> list[dict[str, Any]]:
        """One message from every rank; the first error or death fails the whole group."""
        answers: dict[int, dict[str, Any]] = {}
        pending = {connection: rank for rank, connection in enumerate(self._connections)}
        while pending:
            ready = wait(list(pending), timeout=timeout_s)
            if not ready:
                raise RankFailed(f"ranks {sorted(pending.values())} gave no answer within {timeout_s:.0f} s")
            for connection in ready:
                rank = pending.pop(connection)
                try:
                    message = connection.recv()
                except (EOFError, OSError):
                    message = {"event": "error", "type": "EOFError", "message": "connection closed"}
                if message.get("event") == "error":
                    raise self._failure(rank, message)
                if message.get("event") == "phase":  # rank 0 says where the ranks are: pass it on, keep waiting
                    phases.forward(message)
                    pending[connection] = rank
                    continue
                answers[rank] = message
        if answers[0].get("event") not in (expect, "result"):
            raise RankFailed(f"rank 0 answered {answers[0].get('event')!r}, expected {expect!r}")
        return [answers[rank] for rank in range(self.world)]

    def _failure(self, rank: int, message: dict[str, Any]) -> RankFailed:
        """The group's error: a dead rank if there is one (the others then fail in a collective), else the rank's."""
        for process in self._processes:
            process.join(timeout=1.0)  # give a dying rank a moment to be reaped
        dead = [(index, process.exitcode) for index, process in enumerate(self._processes)
                if process.exitcode not in (None, 0)]
        if dead:
            index, code = dead[0]
            return RankFailed(f"tensor-parallel rank {index} died (exit code {code})", message.get("log_tail"),
                              rank_died=True)
        return RankFailed(f"tensor-parallel rank {rank}: {message['type']}: {message['message']}",
                          message.get("log_tail"))

    def measure(self, request: dict[str, Any]) -> dict[str, Any]:
        """Send one request to every rank and return rank 0's result (metrics, info, logprobs)."""
        try:
            for connection in self._connections:
                connection.send(request)
            return self._collect(None, expect="result")[0]
        except (RankFailed, BrokenPipeError, OSError):
            self.close(force=True)  # a failed rank may leave the others blocked in a collective
            raise

    def close(self, force: bool = False) -> None:
        """Stop every rank (asked to exit, or killed when ``force``) and remove the rendezvous folder."""
        for connection in self._connections if not force else []:
            with contextlib.suppress(BrokenPipeError, OSError):
                connection.send({"op": "shutdown"})
        for process in self._processes:
            process.join(timeout=0 if force else 10)
            if process.is_alive():
                process.kill()
                process.join()
        for connection in self._connections:
            connection.close()
        self._connections, self._processes = [], []
        shutil.rmtree(self._folder, ignore_errors=True)
