"""The agent interface: propose configs through a TuningSession until its budget is spent."""

from __future__ import annotations

import abc
from typing import Any

from tuner.errors import UserError
from tuner.session import TuningSession


class Agent(abc.ABC):
    """A search strategy. It never measures anything itself: every config goes through ``session.evaluate``.

    Contract: ``search`` returns when ``session.exhausted`` is true (or when it has nothing left to
    propose); it must not catch ``BudgetExhausted`` to keep going.
    """

    name: str = "agent"

    @abc.abstractmethod
    def search(self, session: TuningSession, seed: int) -> None:
        """Spend the session's budget looking for the best config."""

    def describe(self) -> dict[str, Any]:
        """Settings worth recording with a run."""
        return {"agent": self.name}


def make_agent(name: str, **options: Any) -> Agent:
    """Build an agent by name; a one-line user error for an unknown name."""
    if name == "random":
        from tuner.agents.random_search import RandomAgent

        return RandomAgent()
    if name == "optuna":
        from tuner.agents.optuna_search import OptunaAgent

        known = ("sampler", "pareto", "storage", "study_name", "heartbeat_s")
        return OptunaAgent(**{key: value for key, value in options.items() if key in known and value is not None})
    if name == "ppo":
        from tuner.agents.ppo_search import PPOAgent

        return PPOAgent(**{key: value for key, value in options.items()
                           if key in ("policy", "save_to", "n_envs") and value is not None})
    raise UserError("unknown agent; known: random, optuna, ppo", field="--agent", value=name)
