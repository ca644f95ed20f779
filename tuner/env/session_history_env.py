"""SessionHistoryEnv: a live tuning session seen as LandscapeEnv sees a replayed one, for a policy to learn on.

The same observation and actions as LandscapeEnv, so a pretrained policy keeps learning on the task; the reward
needs no optimum.

The reward for a measurement is the share of the new best that is new, 1 - best_before / best_after (1 for
the first feasible config, 0 when the best does not move): what LandscapeEnv rewards, the gain in best
quality, measured against the best so far because a live session does not know the optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from stable_baselines3.common.callbacks import BaseCallback

from tuner.env.history import SessionHistory, keeps_score
from tuner.env.observation import LIMIT
from tuner.evaluation.session import TuningSession

MISS_COST = 0.01  # naming a config the task cannot run, or one already measured (as LandscapeEnv's unrecorded)


class SessionHistoryEnv(gym.Env):
    """Each step measures the config the action names in ``session``; truncated once the budget is spent."""

    metadata = {"render_modes": []}

    def __init__(self, session: TuningSession, history: SessionHistory,
                 candidates: list[tuple], to_config: Callable[[tuple], dict[str, Any]], misses_allowed: int,
                 fallback: Callable[[], tuple | None]):
        """``to_config`` turns a family tuple into the task's config; after ``misses_allowed`` misses in a row
        ``fallback`` names an unmeasured config (as the acting agent does), so a session always advances."""
        self.session = session
        self.history = history
        self.candidates = set(candidates)
        self.to_config = to_config
        self.misses_allowed = misses_allowed
        self.fallback = fallback
        self.misses = 0
        self.finished = False  # every config the task allows is measured
        self.action_space = spaces.MultiDiscrete(history.codec.nvec)
        size = SessionHistory.size(history.codec)
        self.observation_space = spaces.Box(-LIMIT, LIMIT, shape=(size,), dtype=np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """The session so far (a live session has one episode: the budget)."""
        super().reset(seed=seed)
        return self.history.observation(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Measure the named config (or, after too many misses, an unmeasured one); reward the best's gain."""
        config = self.history.codec.decode(action)
        if config in self.history.seen or config not in self.candidates:
            self.misses += 1
            if self.misses < self.misses_allowed:
                return self.history.observation(), -MISS_COST, False, False, {"measured": False}
            config = self.fallback()
            if config is None:
                self.finished = True
                return self.history.observation(), 0.0, False, True, {"measured": False}
        self.misses = 0
        before = self.history.best
        record = self.session.evaluate(self.to_config(config))
        self.history.add(config, record.objective, keeps_score(record), spent=self.session.spent)
        after = self.history.best
        gain = 0.0 if after == before else 1.0 - (math.exp(before - after) if math.isfinite(before) else 0.0)
        return self.history.observation(), gain, False, self.session.exhausted, {"measured": True}

    def action_masks(self) -> np.ndarray:
        """Flat mask: the values the task's space allows and its machine can run."""
        return self.history.allowed.astype(bool)


class StopWhenSessionEnds(BaseCallback):
    """Ends ``learn`` once the budget is spent or the task has no unmeasured config left."""

    def __init__(self, env: SessionHistoryEnv):
        super().__init__()
        self.env = env

    def _on_step(self) -> bool:
        return not (self.env.session.exhausted or self.env.finished)
