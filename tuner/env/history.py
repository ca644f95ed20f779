"""What a tuning session has seen so far, as the observation a pretrained policy reads (design §14).

The same class serves pretraining (replayed landscapes) and a live session (real measurements), so the
policy sees the same numbers in both. Nothing in it needs the landscape's optimum: scores are compared with
the best found so far, which a live session knows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from tuner.env.canonical import CanonicalCodec, TaskCodec
from tuner.env.observation import LIMIT
from tuner.evaluation.session import rankable
from tuner.library.features import SIZE as FEATURES_SIZE
from tuner.library.features import feature_vector
from tuner.records import Record

MAX_BUDGET = 32  # budgets are scaled by this in the observation
PER_VALUE = 3  # tried share, failed share, best score with this value relative to the best so far


def keeps_score(record: Record) -> bool:
    """Whether the history keeps a live record's score: rankable, or unstable or pruned inside every bound.

    An unstable config's score is a noisy estimate, and a config pruned for speed has a real, low one (from its
    first passes): both still inform the search (in the landscapes the policy was trained on, such configs are
    rankable ones), while a config out of bounds or failed counts as a failure.
    """
    return rankable(record) or (record.status in ("unstable", "pruned") and record.feasible
                                and math.isfinite(record.objective))


class SessionHistory:
    """Per canonical knob value: how often tried, how often it failed, the best score seen with it."""

    def __init__(self, codec: TaskCodec, features: Mapping[str, Any] | None, budget: int):
        self.codec = codec
        self.features = feature_vector(features)
        self.budget = budget
        self.allowed = codec.mask.astype(np.float32)
        self.tried = np.zeros(codec.size, dtype=np.float32)
        self.failed = np.zeros(codec.size, dtype=np.float32)
        self.best_with = np.full(codec.size, -math.inf)
        self.best = -math.inf
        self.steps = 0
        self.seen: set[tuple] = set()

    @staticmethod
    def size(codec: CanonicalCodec | TaskCodec) -> int:
        """Length of the observation for a canonical space."""
        return FEATURES_SIZE + codec.size * (PER_VALUE + 1) + 4

    def add(self, config: tuple, score: float, rankable: bool, spent: int | None = None) -> None:
        """One measured config: its objective score and whether it may be called best.

        ``spent``: the budget spent so far, when it is not one per config (a live session's cache hits are free).
        """
        self.steps = self.steps + 1 if spent is None else spent
        self.seen.add(config)
        positions = self.codec.flat_indices(config)
        self.tried[positions] += 1
        if not rankable:
            self.failed[positions] += 1
            return
        self.best = max(self.best, score)
        self.best_with[positions] = np.maximum(self.best_with[positions], score)

    def observation(self) -> np.ndarray:
        """Features, then per value (allowed, tried share, failed share, best relative), then progress."""
        tried = self.tried / max(self.budget, 1)
        failed = np.divide(self.failed, self.tried, out=np.zeros_like(self.failed), where=self.tried > 0)
        relative = np.zeros(self.codec.size, dtype=np.float32)
        if math.isfinite(self.best):
            known = np.isfinite(self.best_with)
            # exp(score - best) is the value ratio to the best so far (scores are ±log of the metric)
            relative[known] = np.exp(np.clip(self.best_with[known] - self.best, -20.0, 0.0))
        left = (self.budget - self.steps) / MAX_BUDGET
        progress = np.array([float(math.isfinite(self.best)), left, self.steps / MAX_BUDGET,
                             self.budget / MAX_BUDGET], dtype=np.float32)
        parts = np.concatenate([self.features, self.allowed, tried, failed, relative, progress])
        return np.clip(parts, -LIMIT, LIMIT).astype(np.float32)
