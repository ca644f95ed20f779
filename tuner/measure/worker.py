"""The worker process: keeps models loaded, measures one config per request, classifies every failure.

Run by the launcher as ``python -m tuner.measure.worker --reply-fd N``; requests arrive on stdin, replies
leave on fd N, and everything libraries print goes to stdout/stderr, which the parent keeps as a log tail.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from tuner.measure import phases
from tuner.measure.protocol import decode, encode, error_payload
from tuner.records import Status


def classify(error: BaseException) -> tuple[Status, bool]:
    """(status, restart the worker?) for an exception raised while measuring."""
    from tuner.measure.backends.hf import is_oom
    from tuner.measure.backends.infeasible import Infeasible

    if isinstance(error, Infeasible):
        return Status.INFEASIBLE, False
    if getattr(error, "rank_died", False):
        return Status.CRASH, False  # the dead rank's group is discarded; this worker is intact
    text = str(error).lower()
    if is_oom(error):
        return Status.OOM, True  # allocator state after an OOM is not trusted: start clean
    return Status.ERROR, "cuda error" in text  # a CUDA error is sticky: the process must go


def handle_measure(backend: Any, request: dict[str, Any]) -> dict[str, Any]:
    """Run one measurement and turn its outcome into a reply."""
    from tuner.measure.early_stop import PRUNED, StopRule
    from tuner.measure.faults import faults_enabled, inject, split_rank_fault

    try:
        # INFERTUNE_FAULT (tests): the same fault on every request, e.g. to make every config fail
        fault, rank_fault = split_rank_fault(request.get("fault") or (os.environ.get("INFERTUNE_FAULT")
                                                                      if faults_enabled() else None))
        inject(fault)
        metrics, info = backend.measure(request["task"], request["config"],
                                        rank_fault if faults_enabled() else None,
                                        StopRule.from_payload(request.get("stop")))
    except Exception as error:  # every failure becomes a structured reply, never a dead silence
        status, restart = classify(error)
        frames = traceback.format_exception(error)[-6:]
        lines = [line for frame in frames for line in frame.rstrip().splitlines()]
        lines = list(getattr(error, "log_tail", [])) + lines  # a rank's own traceback first
        return {"status": status.value, "metrics": {}, "info": {},
                "error": error_payload(type(error).__name__, str(error).strip() or repr(error), log_tail=lines),
                "restart": restart}
    status = Status.PRUNED if PRUNED in info else Status.OK if info.get("stable", True) else Status.UNSTABLE
    return {"status": status.value, "metrics": metrics, "info": info, "error": None, "restart": False}


def describe(backend: Any, request: dict[str, Any]) -> dict[str, Any] | None:
    """The task's features for the reply (design §14); None when they cannot be read (its model fails to load)."""
    try:
        return backend.features(request["task"])
    except Exception:  # the measurement's own reply already says what failed
        return None


def serve(reply_fd: int) -> None:
    """Answer requests until stdin closes (the parent is gone) or a shutdown request arrives."""
    import torch

    from tuner.measure.backends.hf import HFBackend

    backend = HFBackend()
    reply = os.fdopen(reply_fd, "wb", buffering=0)
    reply.write(encode({"event": "ready", "pid": os.getpid(), "torch": torch.__version__}))
    phases.install(lambda event: reply.write(encode(event)))  # the parent shows where a measurement is
    try:
        for line in sys.stdin:
            if not line.strip():
                continue
            request = decode(line)
            if request.get("op") == "shutdown":
                break
            if request.get("op") == "describe":  # the task's features before any measurement (warm starts)
                answer = {"status": Status.OK.value, "metrics": {}, "info": {}, "error": None, "restart": False}
            else:
                answer = handle_measure(backend, request)
            answer["id"], answer["features"] = request.get("id"), describe(backend, request)
            with phases.LOCK:
                phases.leave()
                reply.write(encode(answer))
            if answer["restart"]:
                break
    finally:
        backend.close()


def main() -> None:
    """Entry point of the worker subprocess."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--reply-fd", type=int, required=True)
    serve(parser.parse_args().reply_fd)


if __name__ == "__main__":
    main()
