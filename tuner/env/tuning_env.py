"""TuningEnv: each step measures one whole config for real; the reward is its objective score (design §8)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from tuner.env.codec import ActionCodec, value_mask
from tuner.env.observation import LIMIT, ObservationBuilder, task_context
from tuner.evaluation.evaluator import Evaluator, may_reuse_compiles
from tuner.evaluation.resume import Journal
from tuner.evaluation.session import TuningSession
from tuner.records import read_records
from tuner.task import load_task

REPEAT_PENALTY = 1.0  # a config proposed earlier in the episode earns its score minus this: explore, don't loop


class TuningEnv(gym.Env):
    """MultiDiscrete action = one index per knob; observation = task context + last outcome + progress.

    Built either from a task file (``gym.make("infertune/tiny-cpu-v0")``: it owns an evaluator and a budget)
    or around an existing TuningSession (agents share one budget that way). ``action_masks()`` returns the
    flat mask of values this machine can run, for sb3-contrib's MaskablePPO.
    """

    metadata = {"render_modes": []}

    def __init__(self, task_path: str | None = None, *, session: TuningSession | None = None,
                 runs_dir: str = "runs", run_name: str | None = None, budget: int | None = None,
                 cache_dir: str | None = None, worker_env: dict[str, str] | None = None, agent: str = "gym",
                 resume: bool = False, report_records: bool = False, compile_cache: bool = False):
        if session is None:
            if task_path is None:
                raise ValueError("TuningEnv needs a task_path or a session")
            task = load_task(task_path)
            run_dir = Path(runs_dir) / (run_name or f"gym-{task.id}")
            journal = Journal(read_records(run_dir / "records.jsonl")) if resume else None
            evaluator = Evaluator(task, run_dir, agent=agent, cache_dir=Path(cache_dir) if cache_dir else None,
                                  worker_env=worker_env, compile_cache=compile_cache and may_reuse_compiles(task))
            session = TuningSession(evaluator, budget or task.budget, journal=journal)
            self._owns_evaluator = True
        else:
            self._owns_evaluator = False
        self.session = session
        # In a vector of envs the learner holds the budget: it lets each env measure or not before a step,
        # and reads every record back from ``info`` (report_records).
        self.report_records = report_records
        self._allowed = True
        self._shared_progress: tuple[float, float | None] | None = None
        task = session.evaluator.task
        self.codec = ActionCodec(task.space)
        self.action_space = spaces.MultiDiscrete(self.codec.nvec)
        workload = task.workload
        context = task_context(session.evaluator.fingerprint.get("device", "cpu"),
                               workload.new_tokens if workload else 0, workload.num_requests if workload else 0,
                               workload.max_prompt_tokens if workload else 0)
        self.observations = ObservationBuilder(self.codec, context)
        self.observation_space = spaces.Box(-LIMIT, LIMIT, shape=(self.observations.size,), dtype=np.float32)
        self._mask = value_mask(task.space, session.allowed)
        self._last = None
        self._episode_configs: set[tuple] = set()

    def _observe(self) -> np.ndarray:
        best = self.session.best.objective if self.session.best else None
        remaining = 1.0 - self.session.spent / self.session.budget
        if self._shared_progress is not None:
            remaining, best = self._shared_progress
        return self.observations.build(self._last, best, remaining)

    def share_progress(self, allowed: bool, remaining: float, best: float | None) -> None:
        """Vector envs: whether the next step may measure, and the whole search's budget left and best score."""
        self._allowed = allowed
        self._shared_progress = (remaining, best)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        """Start an episode; measurements and the budget carry over (they are the session's)."""
        super().reset(seed=seed)
        self._last = None
        self._episode_configs.clear()
        return self._observe(), {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Measure the config the action names; truncated once the budget is spent."""
        if self.session.exhausted or not self._allowed:
            return self._observe(), 0.0, False, True, {"budget_exhausted": True}
        config = self.codec.decode(action)
        repeated = tuple(config.values()) in self._episode_configs
        self._episode_configs.add(tuple(config.values()))
        record = self.session.evaluate(config)
        self._last = record
        reward = record.objective - (REPEAT_PENALTY if repeated else 0.0)
        # Only what the config determines goes in info (cached/trial live in session.records): the env checker
        # replays a step after reset and expects the same info.
        info = {"status": record.status, "objective": record.objective}
        if self.report_records:
            info.update({"record": record.to_dict(), "resumed": self.session.last_resumed})
        return self._observe(), float(reward), False, self.session.exhausted, info

    def action_masks(self) -> np.ndarray:
        """Flat mask of length sum(nvec): False for values that cannot run on this machine."""
        return self._mask.copy()

    def close(self) -> None:
        """Stop the worker if this env started it."""
        if self._owns_evaluator:
            self.session.evaluator.close()
