"""LandscapeEnv: one episode is one tuning session of budget B on one recorded landscape (design §14).

The reward is the gain in quality of the best feasible config found (quality = value / the landscape's
optimum value), so an episode's return is how good its final best is; a failed config or a repeat spends a
step and gains nothing. A config the recording lacks (never measured: a partial grid, or a combination the
constraints exclude) spends no budget and teaches nothing about the landscape, as in a live session, where
such a config is never proposed; it costs a little reward and the episode is cut after too many of them.
No inference runs: thousands of episodes a minute.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tuner.env.canonical import CanonicalCodec
from tuner.env.history import SessionHistory
from tuner.env.observation import LIMIT
from tuner.library.augment import perturbed
from tuner.library.landscape import Landscape

UNRECORDED_COST = 0.01  # reward for naming a config the recording lacks (a live agent never proposes one)
UNRECORDED_CUT = 4  # the episode is truncated after this many actions per unit of budget


class LandscapeEnv(gym.Env):
    """Tune a replayed landscape drawn from ``landscapes`` with a budget drawn from ``budgets``."""

    metadata = {"render_modes": []}

    def __init__(self, landscapes: Sequence[Landscape], codec: CanonicalCodec,
                 budgets: Sequence[int] = (4, 8, 12, 16), augment: float = 0.0, mirror_batch: float = 0.0):
        """``augment``: the share of episodes played on a perturbed copy of the drawn landscape;
        ``mirror_batch``: the share of those copies whose batch sizes are mirrored."""
        if not landscapes:
            raise ValueError("LandscapeEnv needs at least one landscape")
        self.landscapes = list(landscapes)
        self.codec = codec
        self.budgets = list(budgets)
        self.augment, self.mirror_batch = augment, mirror_batch
        self.action_space = spaces.MultiDiscrete(codec.nvec)
        size = SessionHistory.size(codec)
        self.observation_space = spaces.Box(-LIMIT, LIMIT, shape=(size,), dtype=np.float32)
        self._bound = [codec.bind(landscape.values) for landscape in self.landscapes]
        self.landscape: Landscape = self.landscapes[0]
        self.history = SessionHistory(self._bound[0], self.landscape.features, self.budgets[-1])
        self.best_quality = 0.0
        self.actions = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Draw a landscape and a budget; ``options`` may fix them: {"landscape": index, "budget": B}."""
        super().reset(seed=seed)
        options = options or {}
        index = options.get("landscape", int(self.np_random.integers(len(self.landscapes))))
        budget = options.get("budget", int(self.np_random.choice(self.budgets)))
        self.landscape = self.landscapes[index]
        if self.augment and self.np_random.random() < self.augment:
            self.landscape = perturbed(self.landscape, self.np_random, mirror_batch=self.mirror_batch)
        self.history = SessionHistory(self._bound[index], self.landscape.features, budget)
        self.best_quality = 0.0
        self.actions = 0
        return self.history.observation(), {"landscape": self.landscape.name, "budget": budget}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Measure (look up) the config the action names; the episode ends when the budget is spent."""
        config = self.history.codec.decode(action)
        self.actions += 1
        outcome = self.landscape.outcomes.get(config)
        if outcome is None:
            cut = self.actions >= UNRECORDED_CUT * self.history.budget
            return self.history.observation(), -UNRECORDED_COST, False, cut, {
                "quality": self.best_quality, "recorded": False, "repeated": False}
        repeated = config in self.history.seen
        rankable = outcome.rankable
        self.history.add(config, outcome.score, rankable)
        quality = 0.0 if repeated else self.landscape.quality(config)
        gain = max(0.0, quality - self.best_quality)
        self.best_quality += gain
        done = self.history.steps >= self.history.budget
        info = {"quality": self.best_quality, "recorded": True, "repeated": repeated}
        return self.history.observation(), float(gain), done, False, info

    def action_masks(self) -> np.ndarray:
        """Flat mask: the values this landscape's recording holds."""
        return self.history.allowed.astype(bool)
