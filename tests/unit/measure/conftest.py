"""Fixtures of the measurement tests."""

from __future__ import annotations

import pytest

from tuner.evaluation.evaluator import Evaluator
from tuner.task import TaskSpec


@pytest.fixture(scope="module")
def tiny_evaluator(tmp_path_factory: pytest.TempPathFactory, tiny_task: TaskSpec):
    """One live worker for a whole module: models stay loaded between configs, as in a real run."""
    with Evaluator(tiny_task, tmp_path_factory.mktemp("runs") / "tiny", use_cache=False) as evaluator:
        yield evaluator
