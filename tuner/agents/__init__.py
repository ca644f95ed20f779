"""Search agents behind one interface and one budget: random, optuna, ppo."""

from tuner.agents.base import Agent
from tuner.agents.registry import AGENT_NAMES, default_agent, make_agent

__all__ = ["AGENT_NAMES", "Agent", "default_agent", "make_agent"]
