"""PPO agent: sb3-contrib MaskablePPO on the TuningEnv, stopped exactly when the budget is spent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger

from tuner.agents.base import Agent
from tuner.env.tuning_env import TuningEnv
from tuner.session import TuningSession

# Chosen for budgets of 20-200 measurements: an update every 8 measurements, many epochs over so few
# samples, a high learning rate, and gamma 0 because a config's reward does not depend on the next one
# (tuning is a contextual bandit here).
HYPERPARAMETERS: dict[str, Any] = {"n_steps": 8, "batch_size": 8, "n_epochs": 10, "learning_rate": 3e-3,
                                   "gamma": 0.0, "gae_lambda": 1.0, "ent_coef": 0.01,
                                   "policy_kwargs": {"net_arch": [64, 64]}}


class StopWhenBudgetSpent(BaseCallback):
    """Ends ``learn`` right after the step that spends the last measurement."""

    def __init__(self, session: TuningSession):
        super().__init__()
        self.session = session

    def _on_step(self) -> bool:
        return not self.session.exhausted


class SessionWriter(KVWriter):
    """SB3 logger output that hands PPO's training metrics to the session (and so to MLflow)."""

    def __init__(self, session: TuningSession):
        self.session = session

    def write(self, key_values: dict[str, Any], key_excluded: dict[str, Any], step: int = 0) -> None:
        numbers = {key: float(value) for key, value in key_values.items()
                   if isinstance(value, int | float) and not isinstance(value, bool)}
        if numbers:
            self.session.report_training(numbers, step)

    def close(self) -> None:
        """Nothing to release."""


class PPOAgent(Agent):
    """Learns a policy over configs while it searches; saves it for ``--policy`` to start from later."""

    name = "ppo"

    def __init__(self, policy: str | None = None, save_to: str | None = None):
        self.policy = policy
        self.save_to = save_to
        self.saved: Path | None = None

    def describe(self) -> dict[str, Any]:
        """Hyperparameters and the policy it started from."""
        return {"agent": self.name, "policy": self.policy,
                **{key: value for key, value in HYPERPARAMETERS.items() if key != "policy_kwargs"}}

    def search(self, session: TuningSession, seed: int) -> None:
        """Train MaskablePPO on the shared session until the budget is spent, then save the policy."""
        env = TuningEnv(session=session)
        if self.policy:
            model = MaskablePPO.load(self.policy, env=env, seed=seed)
        else:
            model = MaskablePPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **HYPERPARAMETERS)
        model.set_logger(Logger(folder=None, output_formats=[SessionWriter(session)]))
        model.learn(total_timesteps=session.max_proposals, callback=StopWhenBudgetSpent(session))
        self.saved = Path(self.save_to) if self.save_to else session.evaluator.run_dir / "policy.zip"
        self.saved.parent.mkdir(parents=True, exist_ok=True)
        model.save(self.saved)
