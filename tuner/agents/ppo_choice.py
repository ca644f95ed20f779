"""Which PPO ``--agent ppo`` means: the pretrained policy that only acts, or PPO that learns on the task itself."""

from __future__ import annotations

import functools
import sys
import zipfile
from pathlib import Path

from tuner.agents.base import Agent
from tuner.agents.policy_file import DEFAULT_POLICY, is_pretrained, unknown_knobs
from tuner.agents.ppo_search import PPOAgent
from tuner.agents.pretrained_ppo import PretrainedPPOAgent
from tuner.library.landscape import KNOBS
from tuner.space import SearchSpace
from tuner.util.errors import UserError
from tuner.util.redact import redact_url


def _check_policy_file(policy: str) -> None:
    """A one-line error unless ``policy`` is a saved policy (a zip), before stable-baselines3 appends ``.zip``."""
    if not Path(policy).is_file():
        raise UserError("no such file; give a .zip saved by infertune pretrain or a ppo run, or 'none'",
                        field="--policy", value=policy)
    if not zipfile.is_zipfile(policy):
        raise UserError("not a saved policy (a .zip from infertune pretrain or a ppo run)", field="--policy",
                        value=policy)


def make_ppo_agent(policy: str | None = None, save_to: str | None = None, n_envs: int | None = None,
                   space: SearchSpace | None = None, storage: str | None = None, study_name: str | None = None,
                   heartbeat_s: int | None = None) -> Agent:
    """The pretrained policy (the shipped default, or ``policy`` when it is a pretrained one) acts; ``policy``
    "none", or a policy saved by an earlier run, gives PPO that learns on the task itself. ``storage`` and
    ``study_name``: the pretrained policy proposes from a history shared with other workers."""
    if policy not in (None, "none"):
        _check_policy_file(policy)
    learning = policy == "none" or (policy is not None and not is_pretrained(policy))
    if policy is None and not is_pretrained(DEFAULT_POLICY):
        learning = True  # no shipped policy in this checkout: learn from scratch
    foreign = unknown_knobs(space.names if space is not None else [])
    if not learning and foreign:  # e.g. a serving space: the library's policies only know static-batch knobs
        if policy is not None:
            raise UserError(f"pretrained on the knobs {', '.join(KNOBS)}; this task's space also has "
                            f"{', '.join(foreign)}: use --policy none to learn on it", field="--policy", value=policy)
        _warn_once(f"infertune: warning: the shipped policy knows the knobs {', '.join(KNOBS)}, not "
                   f"{', '.join(foreign)}; ppo learns on this task from scratch (--policy none)")
        learning = True
    if not learning:
        if n_envs not in (None, 1):
            raise UserError("parallel environments are for PPO that learns on the task: add --policy none",
                            field="--envs", value=n_envs)
        return PretrainedPPOAgent(policy or DEFAULT_POLICY, storage=storage, study_name=study_name,
                                  heartbeat_s=heartbeat_s)
    if storage is not None:
        raise UserError("a shared history is for the pretrained policy (or --agent optuna); PPO that learns on the "
                        "task keeps its own", field="--storage", value=redact_url(storage))
    return PPOAgent(**{key: value for key, value in (("policy", None if policy == "none" else policy),
                                                       ("save_to", save_to), ("n_envs", n_envs))
                       if value is not None})


@functools.cache
def _warn_once(line: str) -> None:
    """Print a warning once a process (compare builds an agent per seed)."""
    print(line, file=sys.stderr, flush=True)
