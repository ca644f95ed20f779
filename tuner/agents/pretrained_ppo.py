"""PPO from a policy pretrained on the landscape library: it proposes configs on a new task.

By default it only acts. ``learn_online`` keeps training it on the task (a PPO update every
``ONLINE_N_STEPS`` steps); benchmarks/transfer.py measures both on held-out landscapes
("ppo-pretrained" and "ppo-pretrained-learning"), and the README says which wins and why.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from tuner.agents.base import Agent
from tuner.agents.policy_file import DEFAULT_POLICY, PretrainedPolicy, is_pretrained, load_policy
from tuner.env.history import SessionHistory, keeps_score
from tuner.evaluation.session import BudgetExhausted, TuningSession
from tuner.library.features import FEATURE_NAMES
from tuner.library.landscape import KNOBS, config_tuple
from tuner.space import SearchSpace
from tuner.util.errors import UserError
from tuner.util.redact import redact_url

TRIES = 64  # samples from the policy before falling back to an unmeasured config at random
ONLINE_N_STEPS = 4  # learning online: an update every 4 steps (a step measures a config or names one it cannot)


class PretrainedPPOAgent(Agent):
    """Proposes with a MaskablePPO policy pretrained on recorded landscapes (``infertune pretrain``)."""

    name = "ppo"

    def __init__(self, policy: str | Path = DEFAULT_POLICY, learn_online: bool = False, storage: str | None = None,
                 study_name: str | None = None, heartbeat_s: int | None = None):
        """``study_name`` (at ``storage``, SQLite under runs/ by default): propose from one history shared with
        other workers, an Optuna study."""
        self.policy = Path(policy)
        self.learn_online = learn_online
        self.storage, self.study_name, self.heartbeat_s = storage, study_name, heartbeat_s
        self.updates = 0  # PPO updates made on the task by the last search (learning online)
        if not is_pretrained(self.policy):
            raise UserError("not a pretrained policy (no .json beside it); run `infertune pretrain`",
                            field="--policy", value=str(policy))
        self._loaded: PretrainedPolicy | None = None

    def describe(self) -> dict[str, Any]:
        """The policy and what it was trained on."""
        meta = self.loaded.meta
        return {"agent": self.name, "policy": str(self.policy), "pretrained_on": meta.get("trained_on"),
                "learns_online": self.learn_online, "storage": redact_url(self.storage), "study": self.study_name}

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

        if self.storage is not None or self.study_name is not None:
            self._search_shared(session, seed, policy, history, candidates, to_config)
            return
        if self.learn_online and history.codec.names_every_knob():
            self._learn(session, seed, history, candidates, to_config, rng)
            return
        while not session.exhausted:
            config = propose(policy, history, candidates, rng)
            if config is None:
                return
            record = session.evaluate(to_config(config))
            history.add(config, record.objective, keeps_score(record), spent=session.spent)

    def _search_shared(self, session: TuningSession, seed: int, policy: PretrainedPolicy, empty: SessionHistory,
                       candidates: list[tuple], to_config: Callable[[tuple], dict[str, Any]]) -> None:
        """Propose from the history every worker on the study shares; never a config measured or in flight."""
        from tuner.agents.optuna_storage import HEARTBEAT_INTERVAL_S
        from tuner.agents.shared_history import SharedHistory

        run = session.evaluator.run_dir.name
        url = self.storage or f"sqlite:///{(session.evaluator.run_dir.parent / 'optuna.db').resolve()}"
        shared = SharedHistory(url, self.study_name or run, self.heartbeat_s or HEARTBEAT_INTERVAL_S)
        rng = np.random.default_rng(seed + zlib.crc32(run.encode()))  # workers at one history sample apart

        def propose_shared(finished: list, in_flight: list[dict[str, Any]]) -> dict[str, Any] | None:
            history = SessionHistory(empty.codec, session.evaluator.describe(), session.budget)
            for step, item in enumerate(finished, start=1):
                history.add(config_tuple(item.config), item.score, item.kept, spent=step)
            history.seen.update(config_tuple(config) for config in in_flight)
            config = propose(policy, history, candidates, rng)
            return None if config is None else session.evaluator.task.space.complete(to_config(config))

        while not session.exhausted:
            claimed = shared.claim(session.budget, run, propose_shared)
            if claimed is False:
                return
            trial, config = claimed
            with shared.heartbeat(trial):
                try:
                    record = session.evaluate(config, tags={"study": self.study_name, "study_trial": trial.number})
                except BudgetExhausted:  # the time left did not fit it: nothing ran
                    shared.abandon(trial)
                    return
            shared.tell(trial, record, keeps_score(record))

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

