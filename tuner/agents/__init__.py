"""Search agents behind one interface and one budget: random, optuna, ppo."""

from tuner.agents.base import Agent, make_agent

AGENT_NAMES = ("random", "optuna", "ppo")

__all__ = ["AGENT_NAMES", "Agent", "make_agent"]
