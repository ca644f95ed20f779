"""PPO from a policy pretrained on the landscape library: it proposes configs on a new task.

By default it only acts. ``learn_online`` keeps training it on the task (a PPO update every
``ONLINE_N_STEPS`` steps); benchmarks/transfer.py measures both on held-out landscapes
("ppo-pretrained" and "ppo-pretrained-learning"), and the README says which wins and why.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tuner.agents.base import Agent
from tuner.agents.policy_file import DEFAULT_POLICY, PretrainedPolicy, is_pretrained, load_policy
from tuner.env.history import SessionHistory, keeps_score
from tuner.evaluation.session import TuningSession
from tuner.library.features import FEATURE_NAMES
from tuner.library.landscape import KNOBS, config_tuple
from tuner.space import SearchSpace
from tuner.util.errors import UserError

TRIES = 64  # samples from the policy before falling back to an unmeasured config at random
ONLINE_N_STEPS = 4  # learning online: an update every 4 steps (a step measures a config or names one it cannot)


class PretrainedPPOAgent(Agent):
    """Proposes with a MaskablePPO policy pretrained on recorded landscapes (``infertune pretrain``)."""

    name = "ppo"

    def __init__(self, policy: str | Path = DEFAULT_POLICY, learn_online: bool = False):
        self.policy = Path(policy)
        self.learn_online = learn_online
        self.updates = 0  # PPO updates made on the task by the last search (learning online)
        if not is_pretrained(self.policy):
            raise UserError("not a pretrained policy (no .json beside it); run `infertune pretrain`",
                            field="--policy", value=str(policy))
        self._loaded: PretrainedPolicy | None = None

    def describe(self) -> dict[str, Any]:
        """The policy and what it was trained on."""
        meta = self.loaded.meta
        return {"agent": self.name, "policy": str(self.policy), "pretrained_on": meta.get("trained_on"),
                "learns_online": self.learn_online}

    @property
    def loaded(self) -> PretrainedPolicy:
        """The policy, loaded once."""
        if self._loaded is None:
            self._loaded = load_policy(self.policy)
            if self._loaded.meta.get("features") != FEATURE_NAMES:
                raise UserError("the policy was trained on other task features; pretrain it again",
                                field="--policy", value=str(self.policy))
        return self._loaded

    def search(self, session: TuningSession, seed: int) -> None:
        """Propose, measure, observe, until the budget is spent or every allowed config is measured."""
        policy = self.loaded
        policy.model.set_random_seed(seed)  # the policy samples: one seed, one sequence of proposals
        rng = np.random.default_rng(seed)
        space = session.evaluator.task.space
        allowed = allowed_values(space, session.allowed)
        history = SessionHistory(policy.codec.bind(allowed), session.evaluator.describe(), session.budget)
        candidates = [config_tuple(config) for config in space.grid(allowed)]

        def to_config(config: tuple) -> dict[str, Any]:
            return {name: value for name, value in zip(KNOBS, config, strict=True) if name in space.names}

        if self.learn_online and history.codec.names_every_knob():
            self._learn(session, seed, history, candidates, to_config, rng)
            return
        while not session.exhausted:
            config = propose(policy, history, candidates, rng)
            if config is None:
                return
            record = session.evaluate(to_config(config))
            history.add(config, record.objective, keeps_score(record), spent=session.spent)

    def _learn(self, session: TuningSession, seed: int, history: SessionHistory, candidates: list[tuple],
               to_config: Callable[[tuple], dict[str, Any]], rng: np.random.Generator) -> None:
        """PPO updates on the task's own measurements, starting from the pretrained weights."""
        from sb3_contrib import MaskablePPO

        from tuner.env.session_history_env import SessionHistoryEnv, StopWhenSessionEnds

        env = SessionHistoryEnv(session, history, candidates, to_config, TRIES,
                                lambda: unmeasured_at_random(candidates, history, rng))
        model = MaskablePPO.load(self.policy, env=env, seed=seed, device="cpu",
                                 custom_objects={"n_steps": ONLINE_N_STEPS, "batch_size": ONLINE_N_STEPS})
        pretrained_updates = model._n_updates  # saved with the policy: count only the updates made here
        model.learn(total_timesteps=session.max_proposals * TRIES, callback=StopWhenSessionEnds(env))
        self.updates = (model._n_updates - pretrained_updates) // model.n_epochs


def allowed_values(space: SearchSpace, runnable: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Per knob of the family, the values this task may take: its space's runnable choices, else the default."""
    from tuner.measure.feasibility import knob_defaults

    runnable_choices = dict(zip(space.names, space.choices_within(runnable), strict=True))
    return {name: runnable_choices.get(name, [knob_defaults()[name]]) for name in KNOBS}


def propose(policy: PretrainedPolicy, history: SessionHistory, candidates: list[tuple],
            rng: np.random.Generator) -> tuple | None:
    """The policy's next config: a new one its space allows; else a random unmeasured one; None when none is left."""
    codec = history.codec
    observation = history.observation()
    mask = codec.mask
    for _ in range(TRIES if codec.names_every_knob() else 0):
        action, _ = policy.model.predict(observation, action_masks=mask, deterministic=False)
        config = codec.decode(action)
        if config not in history.seen and config in candidates:
            return config
    return unmeasured_at_random(candidates, history, rng)


def unmeasured_at_random(candidates: list[tuple], history: SessionHistory, rng: np.random.Generator) -> tuple | None:
    """A config of ``candidates`` the session has not measured, at random; None when none is left."""
    left = [config for config in candidates if config not in history.seen]
    return left[int(rng.integers(len(left)))] if left else None

