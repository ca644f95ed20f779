"""Shared fixtures: the tiny and replayed tasks, the environment every test process runs in, the closing summary.

Plain helpers (paths, the command line, fault-enabled evaluators) are in tests/helpers.py; fixtures only one folder
uses are in that folder's conftest.py.
"""

from __future__ import annotations

import os

import pytest

from tests.helpers import REPLAY, ROOT, TEST_OWNER_VARIABLE, TINY
from tuner.task import TaskSpec, load_task

# Converted SmolLM2 weights are shared by every test (the GGUF conversion takes ~20 s once).
os.environ.setdefault("INFERTUNE_MODELS_DIR", str(ROOT / "runs" / "models"))
# Tests share two cores with each other: a run that waited for a quiet machine and measured again would only be
# slower here (tests/unit/evaluation/test_contention.py sets its own rule to test that path).
os.environ.setdefault("INFERTUNE_MAX_FOREIGN_CPU", "none")
# Every process a test starts inherits this mark, so a leftover-process check counts only this pytest process's
# own (an xdist worker beside it runs servers of its own). Assigned, not defaulted: each worker marks its own.
os.environ[TEST_OWNER_VARIABLE] = str(os.getpid())


@pytest.fixture(scope="session")
def tiny_task() -> TaskSpec:
    return load_task(TINY)


@pytest.fixture(scope="session")
def replay_task() -> TaskSpec:
    return load_task(REPLAY)


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
