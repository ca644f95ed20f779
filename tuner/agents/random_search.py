"""Random search: runnable configs in a seeded random order, each at most once."""

from __future__ import annotations

import random

from tuner.agents.base import Agent
from tuner.evaluation.session import TuningSession


class RandomAgent(Agent):
    """Samples the constraint-satisfying, runnable grid without replacement."""

    name = "random"

    def search(self, session: TuningSession, seed: int) -> None:
        """Measure configs in a random order until the budget or the grid runs out."""
        grid = list(session.evaluator.task.space.grid(session.allowed))
        random.Random(seed).shuffle(grid)
        for config in grid:
            if session.exhausted:
                return
            session.evaluate(config)
