"""Pretrain a MaskablePPO policy on replayed landscapes (saved and loaded by ``tuner.agents.policy_file``)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import numpy as np
from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import DummyVecEnv

from tuner.agents.policy_file import POLICY_FORMAT, PretrainedPolicy
from tuner.env.canonical import CanonicalCodec, canonical_values
from tuner.env.landscape_env import LandscapeEnv
from tuner.library.features import FEATURE_NAMES
from tuner.library.landscape import Landscape

BUDGETS = (4, 6, 8, 12, 16, 24, 32)  # episode budgets drawn in pretraining (32 = history.MAX_BUDGET)


class LearningCurve(BaseCallback):
    """Mean final quality of the episodes finished in each rollout, reported as they come."""

    def __init__(self, report: Callable[[dict[str, float], int], None] | None):
        super().__init__()
        self.report = report
        self.points: list[tuple[int, float]] = []
        self._finished: list[float] = []

    def _on_step(self) -> bool:
        for done, info in zip(self.locals["dones"], self.locals["infos"], strict=True):
            if done:
                self._finished.append(float(info["quality"]))
        return True

    def _on_rollout_end(self) -> None:
        if not self._finished:
            return
        quality = float(np.mean(self._finished))
        self.points.append((self.num_timesteps, quality))
        if self.report is not None:
            self.report({"episode_best_quality": quality, "episodes": float(len(self._finished))},
                        self.num_timesteps)
        self._finished = []


def pretrain(landscapes: Sequence[Landscape], *, timesteps: int = 200_000, seed: int = 0, augment: float = 0.0,
             mirror_batch: float = 0.0, n_envs: int = 8,
             report: Callable[[dict[str, float], int], None] | None = None,
             progress_bar: bool = False) -> tuple[PretrainedPolicy, list[tuple[int, float]]]:
    """Train on episodes drawn from ``landscapes``; returns the policy and its learning curve."""
    codec = CanonicalCodec(canonical_values(landscape.values for landscape in landscapes))
    envs = DummyVecEnv([_factory(landscapes, codec, augment, mirror_batch) for _ in range(n_envs)])
    envs.seed(seed)
    model = MaskablePPO("MlpPolicy", envs, n_steps=128, batch_size=256, n_epochs=5, gamma=1.0, gae_lambda=0.95,
                        ent_coef=0.01, learning_rate=3e-4, policy_kwargs={"net_arch": [128, 128]}, seed=seed,
                        verbose=0, device="cpu")
    curve = LearningCurve(report)
    started = time.perf_counter()
    model.learn(total_timesteps=timesteps, callback=curve, progress_bar=progress_bar)
    meta = {"format": POLICY_FORMAT, "trained_on": [landscape.name for landscape in landscapes],
            "timesteps": timesteps, "seed": seed, "augment": augment, "mirror_batch": mirror_batch,
            "seconds": time.perf_counter() - started,
            "features": FEATURE_NAMES, "canonical": codec.to_json(), "ranked": list(codec.ranked),
            "budgets": list(BUDGETS)}
    return PretrainedPolicy(model, codec, meta), curve.points


def _factory(landscapes: Sequence[Landscape], codec: CanonicalCodec, augment: float,
             mirror_batch: float) -> Callable[[], LandscapeEnv]:
    return lambda: LandscapeEnv(landscapes, codec, BUDGETS, augment=augment, mirror_batch=mirror_batch)
