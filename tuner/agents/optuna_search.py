"""Optuna agent: ask/tell over distributions derived from the SearchSpace; failures are constraint violations.

Int knobs become an ``IntDistribution`` over their ordered choices (so TPE/GP can learn "bigger batch is
better"); categorical and bool knobs a ``CategoricalDistribution``. Infeasible or failed configs are told as
completed trials whose constraint ``feasible`` is violated (``trial.set_constraint``, Optuna 5), never as
FAIL: samplers ignore failed trials and would propose the same region again.
"""

from __future__ import annotations

import math
import time
import zlib
from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution
from optuna.trial import TrialState

from tuner.agents.base import Agent
from tuner.agents.optuna_storage import (
    GRACE_HEARTBEATS,
    HEARTBEAT_INTERVAL_S,
    Heartbeat,
    ask_lock,
    ask_seed,
    fail_and_retry,
    fail_silent_trials,
    open_study,
    study_room,
)
from tuner.evaluation.session import BudgetExhausted, TuningSession
from tuner.library.landscape import Landscape
from tuner.library.warm_start import warm_start_configs
from tuner.objective import ObjectiveSpec, violation_size
from tuner.records import Record
from tuner.space import SearchSpace
from tuner.util.errors import UserError
from tuner.util.numbers import is_number
from tuner.util.redact import redact_url

SAMPLERS = ("tpe", "gp", "nsga2", "cmaes", "random")
PARETO_METRICS = (("tokens_per_s", "maximize", 0.0), ("top1_agree", "maximize", 0.0),
                  ("peak_mem_mb", "minimize", 1e9))  # (metric, direction, value told for a failed config)


class SpaceEncoding:
    """SearchSpace ⇄ Optuna distributions and params, by value, so workers on different machines agree.

    An int knob is an ``IntDistribution`` over its declared range of *values* (log-scaled when they span a
    factor of 4 or more, like batch sizes), so TPE/GP can learn "bigger batch is better"; a proposed value is
    taken to the nearest value this machine can run. The range comes from the search space, not from what
    runs here, so a shared study holds one distribution per knob and a param means the same number on every
    worker (an index into this machine's runnable values would not). Categorical and bool knobs are a
    ``CategoricalDistribution`` over their runnable choices.
    """

    def __init__(self, space: SearchSpace, allowed: dict[str, list[Any]]):
        self.values = {knob.name: [choice for choice in knob.choices
                                   if knob.name not in allowed or choice in allowed[knob.name]]
                       for knob in space.knobs}
        self.declared = {knob.name: list(knob.choices) for knob in space.knobs}
        self.types = {knob.name: knob.type for knob in space.knobs}

    def distributions(self) -> dict[str, BaseDistribution]:
        """One distribution per knob with more than one runnable value."""
        result: dict[str, BaseDistribution] = {}
        for name, values in self.values.items():
            if len(values) <= 1:
                continue
            if self.types[name] == "int":
                low, high = min(self.declared[name]), max(self.declared[name])
                result[name] = IntDistribution(low, high, log=low > 0 and high >= 4 * low)
            else:
                result[name] = CategoricalDistribution(values)
        return result

    def config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The config named by a trial's params (single-valued knobs fixed, int values to the nearest runnable)."""
        config = {}
        for name, values in self.values.items():
            if name not in params:
                config[name] = values[0]
            elif self.types[name] == "int":
                config[name] = _nearest(values, params[name])
            else:
                config[name] = params[name]
        return config


def _nearest(values: list[int], proposed: int) -> int:
    """The runnable value closest to ``proposed`` (by ratio when all are positive: 24 → 16 or 32, not 20)."""
    if all(value > 0 for value in values) and proposed > 0:
        return min(values, key=lambda value: (abs(math.log(value / proposed)), value))
    return min(values, key=lambda value: (abs(value - proposed), value))


def make_sampler(name: str, seed: int, budget: int, pareto: bool) -> optuna.samplers.BaseSampler:
    """A seeded sampler for budgets of tens of measurements: few random start-up trials."""
    startup = max(3, budget // 16)  # 3 random starts: measured best on the SmolLM2 landscape (benchmarks/agents.py)
    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True,
                                          constant_liar=True)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed, n_startup_trials=startup)
    if name == "nsga2":
        return optuna.samplers.NSGAIISampler(seed=seed, population_size=max(4, min(20, budget // 3)))
    if name == "cmaes":
        if pareto:
            raise UserError("cmaes optimizes a single objective; use tpe or nsga2 with --pareto", field="--sampler",
                            value=name)
        return optuna.samplers.CmaEsSampler(seed=seed, n_startup_trials=startup, warn_independent_sampling=False)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    raise UserError(f"unknown sampler; known: {', '.join(SAMPLERS)}", field="--sampler", value=name)


def violation(record: Record, objective: ObjectiveSpec) -> float:
    """Optuna constraint value: <= 0 feasible, else how far from feasible (grows with the size of the misses)."""
    if record.feasible:
        return 0.0
    size = violation_size(objective, record.status, record.metrics, record.info.get("reference_metrics"))
    return max(size, 1e-6)  # an infeasible record is never told as satisfied


class OptunaAgent(Agent):
    """TPE by default; gp, nsga2, cmaes, random on request; a Pareto mode over throughput, accuracy, memory."""

    name = "optuna"

    def __init__(self, sampler: str = "tpe", pareto: bool = False, storage: str | None = None,
                 study_name: str | None = None, poll_s: float = 2.0, heartbeat_s: int = HEARTBEAT_INTERVAL_S,
                 warm_start: Sequence[Landscape] | None = None):
        """``warm_start``: a landscape library whose nearest landscapes' best configs are tried first."""
        self.sampler_name = sampler
        self.warm_start = warm_start
        self.pareto = pareto
        self.storage = storage
        self.study_name = study_name
        self.shared = storage is not None and study_name is not None  # other workers may join this study
        self.poll_s = poll_s
        self.heartbeat_s = heartbeat_s
        self._rdb: optuna.storages.RDBStorage | None = None  # the database itself (the study wraps it in a cache)
        self._encoding: SpaceEncoding | None = None
        self._objective: ObjectiveSpec | None = None
        self._session: TuningSession | None = None
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler; known: {', '.join(SAMPLERS)}", field="--sampler", value=sampler)

    def describe(self) -> dict[str, Any]:
        """Sampler, mode, storage and study."""
        return {"agent": self.name, "sampler": self.sampler_name, "pareto": self.pareto,
                "storage": redact_url(self.storage), "study": self.study_name,
                "warm_start": [landscape.name for landscape in self.warm_start] if self.warm_start else None}

    def study(self, session: TuningSession, seed: int) -> optuna.Study:
        """Create (or join) the study in the configured storage; SQLite under runs/ by default."""
        runs_dir = session.evaluator.run_dir.parent
        runs_dir.mkdir(parents=True, exist_ok=True)
        url = self.storage or f"sqlite:///{(runs_dir / 'optuna.db').resolve()}"
        self.study_name = self.study_name or session.evaluator.run_dir.name
        directions = [direction for _, direction, _ in PARETO_METRICS] if self.pareto else ["maximize"]
        try:
            study, self._rdb = open_study(url, self.study_name, directions, self._sampler(seed, session.budget),
                                          self.heartbeat_s)
            return study
        except Exception as error:  # a bad URL, a missing driver, or the driver's own (unreachable, credentials)
            raise UserError(f"cannot open the study: {first_line(error)}", field="--storage",
                            value=redact_url(url)) from None

    def _sampler(self, seed: int, budget: int) -> optuna.samplers.BaseSampler:
        return make_sampler(self.sampler_name, seed, budget, self.pareto)

    def _resume(self, study: optuna.Study, session: TuningSession) -> None:
        """Take back this run's finished trials; fail its trials left running by a killed process (retried once)."""
        run = session.evaluator.run_dir.name
        for trial in study.get_trials(deepcopy=False):
            if trial.user_attrs.get("run") != run:
                continue
            if trial.state == TrialState.COMPLETE and "record_trial" in trial.user_attrs:
                record = session.journal.take_trial(trial.user_attrs["record_trial"])
                if record is not None:
                    session.adopt(record)
                elif trial.user_attrs.get("repeat"):  # answered from an earlier record: counted, not recorded
                    session.count_repeat()
            elif trial.state == TrialState.RUNNING:
                fail_and_retry(study, trial)  # this run's process is gone: nobody else will finish it

    def _may_ask(self, study: optuna.Study, budget: int) -> bool | None:
        """True: ask now; False: the study's budget is spent; None: wait for other workers' running trials."""
        optuna.storages.fail_stale_trials(study)  # a dead worker's trial is failed and queued again, once
        fail_silent_trials(study, GRACE_HEARTBEATS * self.heartbeat_s)  # and one that died before it claimed one
        finished, running, waiting = study_room(study, budget)
        if finished >= budget:
            return False
        if finished + running < budget or waiting:
            return True
        return None

    def search(self, session: TuningSession, seed: int) -> None:
        """Ask a config, measure it, tell the score (or the metrics in Pareto mode) and its feasibility.

        A config this run already measured is told its earlier result (the session's repeat: no record, no
        budget); the session ends the search when the space is covered or proposals stop naming new configs.
        """
        encoding = self._encoding = SpaceEncoding(session.evaluator.task.space, session.allowed)
        self._objective, self._session = session.evaluator.task.objective, session
        distributions = encoding.distributions()
        study = self.study(session, seed)
        self._resume(study, session)
        if self.warm_start and not study.get_trials(deepcopy=False):
            self._enqueue_warm_start(study, session, distributions)
        while not session.exhausted:
            trial = self._ask(study, session, seed, distributions)
            if trial is False:
                return
            if trial is None:
                time.sleep(self.poll_s)
                continue
            with Heartbeat(self._rdb, trial._trial_id):
                if self.shared:
                    self._wait_for_twins(study, trial)
                try:
                    record = session.evaluate(encoding.config(trial.params),
                                              tags={"optuna_study": self.study_name, "optuna_trial": trial.number})
                except BudgetExhausted:  # the time left did not fit it: nothing ran, the trial is not left running
                    study.tell(trial, state=TrialState.FAIL)
                    return
            self._tell(study, trial, record)

    def _enqueue_warm_start(self, study: optuna.Study, session: TuningSession,
                            distributions: dict[str, BaseDistribution]) -> None:
        """Queue the nearest landscapes' best configs as the first trials (knobs they lack are sampled)."""
        configs = warm_start_configs(session.evaluator.describe(), self.warm_start)
        for config in configs[: max(1, session.budget // 2)]:
            params = {}
            for name, distribution in distributions.items():
                value = config.get(name)
                if isinstance(distribution, IntDistribution) and isinstance(value, int):
                    params[name] = min(max(value, distribution.low), distribution.high)
                elif isinstance(distribution, CategoricalDistribution) and value in distribution.choices:
                    params[name] = value
            study.enqueue_trial(params, skip_if_exists=True)

    def _ask(self, study: optuna.Study, session: TuningSession, seed: int,
             distributions: dict[str, BaseDistribution]) -> optuna.Trial | bool | None:
        """A new trial; False when the (shared) budget is spent; None to wait for other workers' trials."""
        if not self.shared:
            trial = self._ask_seeded(study, seed, session.budget, distributions)
            self._claim(trial, session)
            return trial
        with ask_lock(self._rdb, study.study_name):  # check the budget and take a trial atomically
            allowed = self._may_ask(study, session.budget)
            if allowed is not True:
                return allowed
            worker = zlib.crc32(session.evaluator.run_dir.name.encode())  # workers at one history ask apart
            trial = self._ask_seeded(study, seed + worker, session.budget, distributions)
            self._claim(trial, session)  # before the lock is released: others then see whose it is
            return trial

    def _claim(self, trial: optuna.Trial, session: TuningSession) -> None:
        """Mark the trial as this run's and send its first heartbeat (an unclaimed running trial is a dead one)."""
        trial.set_user_attr("run", session.evaluator.run_dir.name)
        trial.set_user_attr("config", self._encoding.config(trial.params))  # what this machine runs for them
        self._rdb.record_heartbeat(trial._trial_id)

    def _ask_seeded(self, study: optuna.Study, seed: int, budget: int,
                    distributions: dict[str, BaseDistribution]) -> optuna.Trial:
        # A fresh sampler per ask, seeded by the study's history, rather than one per study: the samplers keep
        # nothing but their random state between asks (TPE, GP, NSGA-II and CMA-ES rebuild their model from the
        # study's trials), and that state's position is what a resumed process cannot know. Seeding it from the
        # history makes a resumed run ask exactly what the uninterrupted run would have.
        study.sampler = self._sampler(ask_seed(seed, study), budget)
        return study.ask(distributions)

    def _wait_for_twins(self, study: optuna.Study, trial: optuna.Trial) -> None:
        """Wait while an older trial measures this very config: its result then comes from the shared cache.

        Only older trials are waited for, so two workers never wait for each other.
        """
        while True:
            optuna.storages.fail_stale_trials(study)
            running = study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
            mine = self._encoding.config(trial.params)
            if not any(other.number < trial.number and other.user_attrs.get("config") == mine for other in running):
                return
            time.sleep(self.poll_s)

    def _tell(self, study: optuna.Study, trial: optuna.Trial, record: Record) -> None:
        trial.set_constraint("feasible", violation(record, self._objective))
        told = [("status", record.status), ("cached", record.cached), ("record_trial", record.trial)]
        if self._session.last_repeated:  # the session answered from an earlier record of this run: resume counts it
            told.append(("repeat", True))
        for key, value in told:  # "run" was set when the trial was claimed
            trial.set_user_attr(key, value)
        if self.pareto:
            values = [_figure(record.metrics.get(metric), failed) if record.status in ("ok", "unstable") else failed
                      for metric, _, failed in PARETO_METRICS]
            study.tell(trial, values)
        else:
            study.tell(trial, record.objective)


def _figure(value: Any, missing: float) -> float:
    """A metric told to Optuna: a missing or non-finite figure counts as the failed value."""
    if is_number(value):
        return float(value)
    return missing


def first_line(error: BaseException) -> str:
    """The first line of an error's message (its type when it has none)."""
    return str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
