"""The agent interface: propose configs through a TuningSession until its budget is spent."""

from __future__ import annotations

import abc
from typing import Any

from tuner.evaluation.session import TuningSession


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
        """Spend the session's budget looking for the best config.

        Args:
            session: the one way to measure: ``session.evaluate(config)`` returns the config's ``Record``;
                ``session.allowed`` holds the values runnable on this machine, ``session.records`` what was measured
                so far (a resumed run's included), ``session.exhausted`` whether to stop.
            seed: the run's seed; the same seed and the same results must give the same proposals (resume relies on
                it).

        Raises:
            BudgetExhausted: only from ``session.evaluate`` when called after ``session.exhausted`` turned true; an
                agent may let it propagate (the run ends normally) but must not catch it to keep proposing.
            UserError: for settings the agent cannot work with (one line at the command line).
        """

    def describe(self) -> dict[str, Any]:
        """Settings worth recording with a run."""
        return {"agent": self.name}
