"""The agent interface: propose configs through a TuningSession until its budget is spent."""

from __future__ import annotations

import abc
import functools
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.evaluation.session import TuningSession
from tuner.util.errors import UserError

if TYPE_CHECKING:
    from tuner.space import SearchSpace


class Agent(abc.ABC):
    """A search strategy. It never measures anything itself: every config goes through ``session.evaluate``.

    Contract: ``search`` returns when ``session.exhausted`` is true (or when it has nothing left to
    propose); it must not catch ``BudgetExhausted`` to keep going. The session is exhausted when the budget is
    spent and also, with a line saying why, when every runnable config has a record or the agent keeps
    proposing configs the run already has (``STALE_PROPOSALS`` in a row): a huge budget still ends.
    """

    name: str = "agent"

    @abc.abstractmethod
    def search(self, session: TuningSession, seed: int) -> None:
        """Spend the session's budget looking for the best config."""

    def describe(self) -> dict[str, Any]:
        """Settings worth recording with a run."""
        return {"agent": self.name}


def make_agent(name: str, **options: Any) -> Agent:
    """Build an agent by name; a one-line user error for an unknown name."""
    if name == "random":
        from tuner.agents.random_search import RandomAgent

        return RandomAgent()
    if name == "optuna":
        from tuner.agents.optuna_search import OptunaAgent

        known = ("sampler", "pareto", "storage", "study_name", "heartbeat_s", "warm_start")
        return OptunaAgent(**{key: value for key, value in options.items() if key in known and value is not None})
    if name == "ppo":
        return _ppo_agent(options.get("policy"), options.get("save_to"), options.get("n_envs"), options.get("space"))
    raise UserError("unknown agent; known: random, optuna, ppo", field="--agent", value=name)


def _check_policy_file(policy: str) -> None:
    """A one-line error unless ``policy`` is a saved policy (a zip), before stable-baselines3 appends ``.zip``."""
    import zipfile

    if not Path(policy).is_file():
        raise UserError("no such file; give a .zip saved by infertune pretrain or a ppo run, or 'none'",
                        field="--policy", value=policy)
    if not zipfile.is_zipfile(policy):
        raise UserError("not a saved policy (a .zip from infertune pretrain or a ppo run)", field="--policy",
                        value=policy)


def _ppo_agent(policy: str | None, save_to: str | None, n_envs: int | None, space: SearchSpace | None) -> Agent:
    """The pretrained policy (the shipped default, or ``policy`` when it is a pretrained one) acts; ``policy``
    "none", or a policy saved by an earlier run, gives PPO that learns on the task itself."""
    from tuner.agents.ppo_search import PPOAgent
    from tuner.agents.pretrained_ppo import DEFAULT_POLICY, PretrainedPPOAgent, is_pretrained
    from tuner.library.landscape import KNOBS

    if policy not in (None, "none"):
        _check_policy_file(policy)
    learning = policy == "none" or (policy is not None and not is_pretrained(policy))
    if policy is None and not is_pretrained(DEFAULT_POLICY):
        learning = True  # no shipped policy in this checkout: learn from scratch
    foreign = [name for name in (space.names if space is not None else []) if name not in KNOBS]
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
        return PretrainedPPOAgent(policy or DEFAULT_POLICY)
    return PPOAgent(**{key: value for key, value in (("policy", None if policy == "none" else policy),
                                                       ("save_to", save_to), ("n_envs", n_envs))
                       if value is not None})


@functools.cache
def _warn_once(line: str) -> None:
    """Print a warning once a process (compare builds an agent per seed)."""
    print(line, file=sys.stderr, flush=True)
