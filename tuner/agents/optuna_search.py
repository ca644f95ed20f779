"""Optuna agent: ask/tell over distributions derived from the SearchSpace; failures are constraint violations.

Int knobs become an ``IntDistribution`` over their ordered choices (so TPE/GP can learn "bigger batch is
better"); categorical and bool knobs a ``CategoricalDistribution``. Infeasible or failed configs are told as
completed trials whose constraint ``feasible`` is violated (``trial.set_constraint``, Optuna 5), never as
FAIL: samplers ignore failed trials and would propose the same region again.
"""

from __future__ import annotations

from typing import Any

import optuna
from optuna.distributions import BaseDistribution, CategoricalDistribution, IntDistribution

from tuner.agents.base import Agent
from tuner.errors import UserError
from tuner.records import Record
from tuner.session import TuningSession
from tuner.space import SearchSpace

SAMPLERS = ("tpe", "gp", "nsga2", "cmaes", "random")
PARETO_METRICS = (("tokens_per_s", "maximize", 0.0), ("top1_agree", "maximize", 0.0),
                  ("peak_mem_mb", "minimize", 1e9))  # (metric, direction, value told for a failed config)


class SpaceEncoding:
    """SearchSpace (restricted to runnable values) ⇄ Optuna distributions and params."""

    def __init__(self, space: SearchSpace, allowed: dict[str, list[Any]]):
        self.values = {knob.name: [choice for choice in knob.choices
                                   if knob.name not in allowed or choice in allowed[knob.name]]
                       for knob in space.knobs}
        self.types = {knob.name: knob.type for knob in space.knobs}

    def distributions(self) -> dict[str, BaseDistribution]:
        """One distribution per knob with more than one runnable value."""
        result: dict[str, BaseDistribution] = {}
        for name, values in self.values.items():
            if len(values) > 1:
                result[name] = (IntDistribution(0, len(values) - 1) if self.types[name] == "int"
                                else CategoricalDistribution(values))
        return result

    def config(self, params: dict[str, Any]) -> dict[str, Any]:
        """The config named by a trial's params (single-valued knobs fixed)."""
        config = {}
        for name, values in self.values.items():
            if name not in params:
                config[name] = values[0]
            elif self.types[name] == "int":
                config[name] = values[params[name]]
            else:
                config[name] = params[name]
        return config


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


def violation(record: Record) -> float:
    """Optuna constraint value: <= 0 feasible; a failed config violates by 1 plus the size of its misses."""
    return 0.0 if record.feasible else 1.0 + max(0.0, -record.objective) / 100.0


class OptunaAgent(Agent):
    """TPE by default; gp, nsga2, cmaes, random on request; a Pareto mode over throughput, accuracy, memory."""

    name = "optuna"

    def __init__(self, sampler: str = "tpe", pareto: bool = False, storage: str | None = None,
                 study_name: str | None = None):
        self.sampler_name = sampler
        self.pareto = pareto
        self.storage = storage
        self.study_name = study_name
        if sampler not in SAMPLERS:
            raise UserError(f"unknown sampler; known: {', '.join(SAMPLERS)}", field="--sampler", value=sampler)

    def describe(self) -> dict[str, Any]:
        """Sampler, mode, storage and study."""
        return {"agent": self.name, "sampler": self.sampler_name, "pareto": self.pareto,
                "storage": self.storage, "study": self.study_name}

    def study(self, session: TuningSession, seed: int) -> optuna.Study:
        """Create (or join) the study in the configured storage; SQLite under runs/ by default."""
        runs_dir = session.evaluator.run_dir.parent
        runs_dir.mkdir(parents=True, exist_ok=True)
        storage = self.storage or f"sqlite:///{(runs_dir / 'optuna.db').resolve()}"
        self.study_name = self.study_name or session.evaluator.run_dir.name
        directions = [direction for _, direction, _ in PARETO_METRICS] if self.pareto else ["maximize"]
        optuna.logging.set_verbosity(optuna.logging.WARNING)
        try:
            return optuna.create_study(storage=storage, study_name=self.study_name, directions=directions,
                                       sampler=make_sampler(self.sampler_name, seed, session.budget, self.pareto),
                                       load_if_exists=True)
        except (ValueError, ImportError, optuna.exceptions.OptunaError) as error:
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            raise UserError(f"cannot open the study: {first_line}", field="--storage", value=storage) from None

    def search(self, session: TuningSession, seed: int) -> None:
        """Ask a config, measure it, tell the score (or the metrics in Pareto mode) and its feasibility."""
        encoding = SpaceEncoding(session.evaluator.task.space, session.allowed)
        distributions = encoding.distributions()
        study = self.study(session, seed)
        while not session.exhausted:
            trial = study.ask(distributions)
            record = session.evaluate(encoding.config(trial.params))
            trial.set_constraint("feasible", violation(record))
            for key, value in (("status", record.status), ("cached", record.cached), ("record_trial", record.trial),
                               ("run", record.run)):
                trial.set_user_attr(key, value)
            if self.pareto:
                values = [record.metrics.get(metric, failed) if record.status in ("ok", "unstable") else failed
                          for metric, _, failed in PARETO_METRICS]
                study.tell(trial, values)
            else:
                study.tell(trial, record.objective)
