"""Search agents behind one interface and one budget: random, optuna, ppo."""

from tuner.agents.base import Agent
from tuner.agents.registry import AGENT_NAMES, make_agent

__all__ = ["AGENT_NAMES", "Agent", "make_agent"]
