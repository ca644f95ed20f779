"""Drive a server with GuideLLM (the load generator vLLM's project ships) and read back every request's timings."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tuner.serving.server import die_with_parent_process, log_tail

PROFILES = {"poisson": "poisson", "constant": "constant", "concurrent": "concurrent"}


class LoadFailed(Exception):
    """The load generator failed or hung: ``status`` is ``error`` or ``timeout``."""

    def __init__(self, status: str, message: str, log_tail: list[str]):
        super().__init__(message)
        self.status = status
        self.log_tail = log_tail


@dataclass(frozen=True)
class RequestSample:
    """One request as the load generator saw it (seconds; ``ttft_s`` None for a request that never streamed)."""

    ok: bool
    ttft_s: float | None
    itl_s: float | None  # mean gap between output tokens after the first
    e2e_s: float | None
    output_tokens: int
    start_s: float | None = None  # wall-clock send and end times (what the run's duration is measured from)
    end_s: float | None = None


@dataclass(frozen=True)
class LoadRun:
    """One load run: its requests and how long it lasted (first request sent to last request done)."""

    samples: tuple[RequestSample, ...]
    duration_s: float


def available() -> bool:
    """Whether GuideLLM is installed (``pip install 'infertune[serving]'``)."""
    import importlib.util

    return importlib.util.find_spec("guidellm") is not None


def version() -> str:
    """GuideLLM's version, or "missing" (part of the serving backend's fingerprint)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as package_version

    try:
        return package_version("guidellm")
    except PackageNotFoundError:
        return "missing"


def scenario(base_url: str, model: str, data_file: Path, load: dict[str, Any], output: Path, seed: int) -> dict:
    """A GuideLLM scenario: the task's prompts as a JSON file, the arrival profile, a request count, greedy decoding.

    Output lengths are capped with ``max_tokens``, not fixed per row: a fixed count makes GuideLLM send vLLM's
    ``ignore_eos``, which the OpenAI schema (and so transformers serve) rejects.
    """
    arrival = load["process"]
    profile: dict[str, Any] = {"kind": PROFILES[arrival]}
    if arrival == "concurrent":
        profile["streams"] = [int(load["concurrency"])]
    else:
        profile["rate"] = [float(load["rate"])]
    return {"spec": {
        "backend": {"kind": "openai_http", "target": base_url, "model": model, "request_format": "/v1/completions",
                    "validate_backend": False, "max_tokens": int(load["max_tokens"]),
                    "extras": {"body": {"temperature": 0.0}}},
        "profile": profile,
        "constraints": [{"kind": "max_requests", "count": int(load["num_requests"])}],
        "data": [{"kind": "json_file", "path": str(data_file)}],
        "seed": {"kind": "static", "value": seed},
        "outputs": [{"kind": "json", "path": str(output)}],
    }}


def run_load(base_url: str, model: str, prompts: list[str], load: dict[str, Any], work_dir: Path, timeout_s: float,
             seed: int = 0) -> LoadRun:
    """Run GuideLLM once against ``base_url`` in its own process group; raises ``LoadFailed``."""
    work_dir = work_dir.resolve()  # GuideLLM runs in it: a relative path would point at a folder below itself
    work_dir.mkdir(parents=True, exist_ok=True)
    data_file, output, log_path = work_dir / "prompts.jsonl", work_dir / "guidellm.json", work_dir / "guidellm.log"
    rows = [prompts[index % len(prompts)] for index in range(int(load["num_requests"]))]
    data_file.write_text("".join(json.dumps({"prompt": row}) + "\n" for row in rows))
    scenario_file = work_dir / "scenario.json"
    scenario_file.write_text(json.dumps(scenario(base_url, model, data_file, load, output, seed), indent=1))
    output.unlink(missing_ok=True)
    argv = [sys.executable, "-m", "guidellm", "run", "-c", str(scenario_file), "--disable-console"]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True, cwd=work_dir,
                                   preexec_fn=die_with_parent_process)  # noqa: PLW1509 - only prctl, no locks taken
        try:
            process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            _kill_group(process)
            raise LoadFailed("timeout", f"GuideLLM did not finish within {timeout_s:.0f} s",
                             log_tail(log_path)) from None
        finally:
            _kill_group(process)  # nothing it started outlives it
    if process.returncode != 0 or not output.is_file():
        raise LoadFailed("error", f"GuideLLM exited with code {process.returncode}", log_tail(log_path))
    return parse_report(json.loads(output.read_text()))


def _kill_group(process: subprocess.Popen) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def parse_report(report: dict[str, Any]) -> LoadRun:
    """The requests of a GuideLLM JSON report's first benchmark (errored and incomplete ones count as failed)."""
    benchmark = report["benchmarks"][0]
    requests = benchmark["requests"]
    samples = [_sample(row, ok=True) for row in requests.get("successful") or []]
    samples += [_sample(row, ok=False) for kind in ("errored", "incomplete") for row in requests.get(kind) or []]
    # From the first request sent to the last one done: GuideLLM's own benchmark duration also holds its start-up
    # and drain phases, which made request throughput swing 5x between identical runs of a short load.
    starts = [sample.start_s for sample in samples if sample.start_s is not None]
    ends = [sample.end_s for sample in samples if sample.end_s is not None]
    duration = max(ends) - min(starts) if starts and ends else 0.0
    return LoadRun(tuple(samples), float(duration))


def _sample(row: dict[str, Any], ok: bool) -> RequestSample:
    timings = row.get("info", {}).get("timings", {})
    tokens = int(((row.get("output_metrics") or {}).get("text_tokens")) or 0)
    start, first, last, end = (timings.get(key) for key in ("request_start", "first_token_iteration",
                                                              "last_token_iteration", "request_end"))
    ttft = first - start if ok and first is not None and start is not None else None
    itl = (last - first) / (tokens - 1) if ok and None not in (first, last) and tokens > 1 else None
    e2e = end - start if ok and None not in (start, end) else None
    return RequestSample(ok and ttft is not None, ttft, itl, e2e, tokens, start, end)
