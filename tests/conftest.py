"""Shared fixtures: repository paths, a tiny-model evaluator, fault-enabled evaluators."""

from __future__ import annotations

import dataclasses
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tuner.evaluation.evaluator import Evaluator
from tuner.task import TaskSpec, load_task

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "envs" / "tiny-cpu.yaml"
SMOLLM2 = ROOT / "envs" / "smollm2-cpu.yaml"
REPLAY = ROOT / "envs" / "smollm2-cpu-replay.yaml"

# Converted SmolLM2 weights are shared by every test (the GGUF conversion takes ~20 s once).
os.environ.setdefault("INFERTUNE_MODELS_DIR", str(ROOT / "runs" / "models"))
# Every process a test starts inherits this mark, so a leftover-process check counts only this pytest process's
# own (an xdist worker beside it runs servers of its own). Assigned, not defaulted: each worker marks its own.
TEST_OWNER_VARIABLE = "INFERTUNE_TEST_OWNER"
os.environ[TEST_OWNER_VARIABLE] = str(os.getpid())


@pytest.fixture(scope="module")
def kv_cache_sized_from_free_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Held by a test module whose servers let the engine size its KV cache (transformers takes 60% of free memory
    on a CPU): two of them at once, one per xdist worker, exhaust the machine and the kernel kills one."""
    shared = tmp_path_factory.getbasetemp().parent  # under xdist, the folder every worker's temp folder is in
    with open(shared / "kv-cache-sized-from-free-memory.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield


@pytest.fixture(scope="session")
def tiny_task() -> TaskSpec:
    return load_task(TINY)


@pytest.fixture(scope="session")
def replay_task() -> TaskSpec:
    return load_task(REPLAY)


@pytest.fixture(scope="module")
def tiny_evaluator(tmp_path_factory: pytest.TempPathFactory, tiny_task: TaskSpec):
    """One live worker for a whole module: models stay loaded between configs, as in a real run."""
    with Evaluator(tiny_task, tmp_path_factory.mktemp("runs") / "tiny", use_cache=False) as evaluator:
        yield evaluator


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


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say plainly, at the end, when the distributed tests did not run: a green run then proved less."""
    if os.environ.get("INFERTUNE_TEST_POSTGRES_URL"):
        return
    skipped = [report for report in terminalreporter.stats.get("skipped", [])
               if "INFERTUNE_TEST_POSTGRES_URL" in str(report.longrepr)]
    if skipped:
        terminalreporter.write_sep("=", "PostgreSQL tests skipped", yellow=True)
        terminalreporter.write_line(f"{len(skipped)} distributed tests did not run: INFERTUNE_TEST_POSTGRES_URL is "
                                    "not set (`export INFERTUNE_TEST_POSTGRES_URL=$(bash .ci/postgres)`, as .ci/run "
                                    "does).")
