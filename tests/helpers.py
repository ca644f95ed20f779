"""Plain helpers the tests share: repository paths, the command line, evaluators, recordings, the browser.

Fixtures live in the conftest.py files; what a test module imports from elsewhere lives here (a test module never
imports another).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tuner.evaluation.evaluator import Evaluator
from tuner.task import TaskSpec

# --- repository paths -------------------------------------------------------------------------------------------------
ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "envs" / "tiny-cpu.yaml"
SMOLLM2 = ROOT / "envs" / "smollm2-cpu.yaml"
REPLAY = ROOT / "envs" / "smollm2-cpu-replay.yaml"
RECORDING = ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl"  # the shipped SmolLM2 landscape REPLAY replays

# Every process a test starts inherits this mark (set by tests/conftest.py), so a leftover-process check counts only
# this pytest process's own (an xdist worker beside it runs servers of its own).
TEST_OWNER_VARIABLE = "INFERTUNE_TEST_OWNER"

# --- the command line -------------------------------------------------------------------------------------------------


def infertune(*args: str, runs: Path) -> subprocess.CompletedProcess:
    """``infertune --runs-dir RUNS ARGS`` as a user runs it, from the repository's root."""
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=900)


# --- tasks and evaluators ---------------------------------------------------------------------------------------------


def tiny_without_compile(folder: Path) -> Path:
    """The tiny task over a space without compile or shards (a compiled config costs ~20 s of warmup here)."""
    space = folder / "space.yaml"
    space.write_text("id: tiny-quick\nversion: 1\nknobs:\n"
                     "  batch_size: {type: int, choices: [1, 4, 16]}\n"
                     "  dtype: {type: categorical, choices: [float32, bfloat16]}\n"
                     "  attn_implementation: {type: categorical, choices: [eager, sdpa], default: sdpa}\n")
    task = folder / "tiny.yaml"
    task.write_text(TINY.read_text().replace("search_space: hf-transformers", f"search_space: {space}"))
    return task


def fault_evaluator(task: TaskSpec, run_dir: Path, timeout_s: float | None = None) -> Evaluator:
    """An evaluator whose worker honours injected faults (and, optionally, a short step timeout)."""
    if timeout_s is not None:
        task = dataclasses.replace(task, timeout_s=timeout_s)
    return Evaluator(task, run_dir, use_cache=False, worker_env={"INFERTUNE_ENABLE_FAULTS": "1"})


def measure_ok(evaluator: Evaluator, config: dict, tries: int = 3):
    """A stable (``ok``) measurement: an unstable one is not cached, so each try measures again."""
    for _ in range(tries):
        record = evaluator.evaluate(config)
        assert record.cached is False
        if record.status == "ok":
            return record
    pytest.skip(f"no stable measurement in {tries} tries: this machine is too busy to time anything")


# --- recordings and labeled sets --------------------------------------------------------------------------------------

LABELED_EVERY = 3  # the task's 48 labeled items, every third scored: 16, a third of the scoring time
OPTIONAL = ("ttft_s", "tpot_s", "latency_p50_s", "latency_p95_s", "peak_mem_mb", "warmup_s", "top1_agree", "kl",
            "task_accuracy", "repeats", "cv")


def null_recording(folder: Path, variant: str, objective: str = "maximize: tokens_per_s") -> Path:
    """The shipped landscape with its optional metrics nulled, as a replay task; returns the task file."""
    rows = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    ok = 0
    for row in rows:
        if row["status"] == "ok":
            row["metrics"] = {**row["metrics"], **dict.fromkeys(OPTIONAL)}
            if variant == "throughput" and ok % 3:
                row["metrics"]["tokens_per_s"] = None
            ok += 1
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "nulls.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    task = folder / "task.yaml"
    task.write_text(f"id: nulls-{variant}\nbackend: replay\nrecording: nulls.jsonl\n"
                    f"model: {{name: SmolLM2-135M-Instruct}}\nsearch_space: smollm2-cpu-reduced\n"
                    f"objective:\n  {objective}\nbudget: 8\nseed: 0\n")
    return task


# --- the browser ------------------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# Flags for a root, offline, headless Chromium (no sandbox, no background calls to the closed network).
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--virtual-time-budget=20000", "--window-size=1400,1000"]
