"""The agents by name: each an entry point ``"module:callable"``, imported only when that agent is made.

As Gymnasium's ``register(id, entry_point=...)``: the names are written once, here, and the interface
(``tuner.agents.base``) never imports an implementation.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Any

from tuner.agents.base import Agent
from tuner.agents.policy_file import unknown_knobs
from tuner.space import SearchSpace
from tuner.util.errors import UserError


@dataclass(frozen=True)
class AgentSpec:
    """One registered agent: its name, what builds it, and the options that builder takes."""

    name: str
    entry_point: str  # "module:callable"; the callable takes the options below as keywords and returns an Agent
    options: tuple[str, ...] = ()

    def make(self, **options: Any) -> Agent:
        """Build the agent from the options it takes (others, and options left at None, are not passed)."""
        module, _, attribute = self.entry_point.partition(":")
        factory = getattr(importlib.import_module(module), attribute)
        return factory(**{key: value for key, value in options.items() if key in self.options and value is not None})


REGISTRY: dict[str, AgentSpec] = {spec.name: spec for spec in (
    AgentSpec("random", "tuner.agents.random_search:RandomAgent"),
    AgentSpec("optuna", "tuner.agents.optuna_search:OptunaAgent",
              ("sampler", "pareto", "storage", "study_name", "heartbeat_s", "warm_start")),
    AgentSpec("ppo", "tuner.agents.ppo_choice:make_ppo_agent",
              ("policy", "save_to", "n_envs", "space", "storage", "study_name", "heartbeat_s")),
    AgentSpec("coordinate", "tuner.agents.coordinate_search:CoordinateAgent"),
)}
AGENT_NAMES = tuple(REGISTRY)


def default_agent(space: SearchSpace) -> tuple[str, str]:
    """The agent ``tune`` runs when none is named, and why: the one the benchmarks rank first where it was measured.

    On the static-batch knobs the landscape library records, that is coordinate search from the default config
    (benchmarks/searchers.py: best found / optimum over the library at budgets 8 to 16, ahead of the pretrained
    policy, with no features and no training to transfer); on other knobs (serving), Optuna.
    """
    unknown = unknown_knobs(space.names)
    if unknown:
        return "optuna", f"no benchmark ranks the agents on the knobs {', '.join(unknown)}"
    return "coordinate", ("coordinate search from the default config ranks first on the landscape library at "
                          "budgets 8-16 (benchmarks/searchers.py)")


def make_agent(name: str, **options: Any) -> Agent:
    """Build an agent by name; a one-line user error for an unknown name."""
    spec = REGISTRY.get(name)
    if spec is None:
        raise UserError(f"unknown agent; known: {', '.join(AGENT_NAMES)}", field="--agent", value=name)
    return spec.make(**options)
