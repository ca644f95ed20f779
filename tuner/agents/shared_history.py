"""One history for many workers of an agent that proposes configs itself (the pretrained policy), in an Optuna study.

The study is the ledger: each trial holds one config (``user_attrs["config"]``) and, once measured, its score
(the trial's value) and whether the history keeps that score (``user_attrs["kept"]``). A worker takes the study's
lock, reads every finished trial into its history and every running or waiting one as in flight, proposes a
config no one has measured or is measuring, and claims it as a new trial before letting go of the lock: two
workers never measure the same config. The study's budget is its number of finished trials, as for Optuna's own
workers; a trial whose worker died is failed by heartbeat and retried once, by the next worker that asks.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optuna
from optuna.trial import TrialState

from tuner.agents.optuna_storage import (
    GRACE_HEARTBEATS,
    HEARTBEAT_INTERVAL_S,
    Heartbeat,
    ask_lock,
    fail_silent_trials,
    open_study,
    study_room,
)
from tuner.records import Record
from tuner.util.errors import UserError
from tuner.util.redact import redact_url

POLL_S = 2.0  # how often a worker looks again while the study's budget is held by running trials


@dataclass(frozen=True)
class Finished:
    """A finished trial of the shared history: its config, score, and whether the history keeps the score."""

    config: dict[str, Any]
    score: float
    kept: bool


class SharedHistory:
    """The study many workers propose from; ``claim`` hands out configs that no other worker has taken."""

    def __init__(self, url: str, study_name: str, heartbeat_s: int = HEARTBEAT_INTERVAL_S, poll_s: float = POLL_S):
        self.url, self.study_name, self.heartbeat_s, self.poll_s = url, study_name, heartbeat_s, poll_s
        try:
            self.study, self._rdb = open_study(url, study_name, ["maximize"], None, heartbeat_s)
        except Exception as error:  # a bad URL, a missing driver, or the driver's own (unreachable, credentials)
            text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot open the study: {text}", field="--storage", value=redact_url(url)) from None

    def _trials(self, *states: TrialState) -> list[optuna.trial.FrozenTrial]:
        return [trial for trial in self.study.get_trials(deepcopy=False, states=states) if "config" in trial.user_attrs]

    def finished(self) -> list[Finished]:
        """Every measured config of the study, in the order they finished."""
        done = sorted(self._trials(TrialState.COMPLETE), key=lambda trial: trial.datetime_complete or trial.number)
        return [Finished(trial.user_attrs["config"], float(trial.value), bool(trial.user_attrs.get("kept")))
                for trial in done]

    def in_flight(self) -> list[dict[str, Any]]:
        """Configs some worker is measuring (or will: a dead worker's trial waiting for its retry)."""
        return [trial.user_attrs["config"] for trial in self._trials(TrialState.RUNNING, TrialState.WAITING)]

    def claim(self, budget: int, run: str,
              propose: Callable[[list[Finished], list[dict[str, Any]]], dict[str, Any] | None]
              ) -> tuple[optuna.Trial, dict[str, Any]] | bool:
        """A trial and the config to measure for it; False when the study's budget is spent or nothing is left.

        ``propose(finished, in_flight)`` names a config outside both, or None. A dead worker's trial waiting for
        its retry is taken first, with its config. Waits while running trials hold the rest of the budget.
        """
        while True:
            with ask_lock(self._rdb, self.study_name):  # read, propose and claim as one step among the workers
                optuna.storages.fail_stale_trials(self.study)  # a dead worker's trial: failed, queued again once
                fail_silent_trials(self.study, GRACE_HEARTBEATS * self.heartbeat_s)
                finished, running, waiting = study_room(self.study, budget)
                if finished >= budget:
                    return False
                if finished + running < budget or waiting:
                    trial = self.study.ask()
                    config = trial.user_attrs.get("config")  # a retried trial keeps the config it was given
                    if config is None:
                        config = propose(self.finished(), self.in_flight())
                        if config is None:
                            self.study.tell(trial, state=TrialState.FAIL)
                            return False
                        trial.set_user_attr("config", config)
                    trial.set_user_attr("run", run)
                    self._rdb.record_heartbeat(trial._trial_id)
                    return trial, config
            time.sleep(self.poll_s)

    def heartbeat(self, trial: optuna.Trial) -> Heartbeat:
        """The trial's heartbeat while its config is measured (a silent trial is a dead worker's)."""
        return Heartbeat(self._rdb, trial._trial_id)

    def tell(self, trial: optuna.Trial, record: Record, kept: bool) -> None:
        """The measured score, and whether the history keeps it (a failure's counts as a failure)."""
        trial.set_user_attr("kept", kept)
        trial.set_user_attr("status", record.status)
        trial.set_user_attr("record_trial", record.trial)
        self.study.tell(trial, record.objective)

    def abandon(self, trial: optuna.Trial) -> None:
        """Fail a claimed trial that was never measured (the worker's time ran out): not retried, not counted."""
        self.study.tell(trial, state=TrialState.FAIL)
