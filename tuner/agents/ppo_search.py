"""PPO agent: sb3-contrib MaskablePPO on the TuningEnv, stopped exactly when the budget is spent."""

from __future__ import annotations

import contextlib
import signal
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import KVWriter, Logger
from stable_baselines3.common.vec_env import SubprocVecEnv

from tuner.agents.base import Agent
from tuner.env.tuning_env import TuningEnv
from tuner.evaluation.session import BudgetExhausted, TuningSession
from tuner.measure.backends.model_store import HOST_WORKERS
from tuner.measure.interrupts import die_with_parent, handle_interrupts
from tuner.records import Record
from tuner.util.errors import UserError

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


class ParallelBudget(BaseCallback):
    """N envs in subprocesses, one budget: reads each env's record from ``info``, lets only as many envs
    measure in the next step as measurements are left, and shares the search's progress with every env."""

    def __init__(self, session: TuningSession, n_envs: int):
        super().__init__()
        self.session, self.n_envs = session, n_envs

    def _share(self) -> None:
        session = self.session
        left = session.budget - session.spent
        best = session.best.objective if session.best else None
        for index in range(self.n_envs):
            self.training_env.env_method("share_progress", index < left, left / session.budget, best,
                                         indices=[index])

    def _on_training_start(self) -> None:
        self._share()

    def _on_step(self) -> bool:
        infos = [info for info in self.locals["infos"] if "record" in info]
        for info in infos:
            self.session.adopt(Record.from_dict(info["record"]), resumed=info["resumed"])
        if not infos:  # the envs allowed to measure all stopped on their own (each covered its space, or repeats)
            self.session.stop("no environment has a new config left to measure")
        if self.session.check_time():  # the envs measure in their own sessions: the time budget is checked here
            return False
        self._share()
        return True


def _env_factory(task_file: str, run_dir: Path, index: int, n_envs: int, cache_dir: Path, device: str,
                 resume: bool) -> Any:
    def make() -> TuningEnv:
        # in the env's own process: a SIGTERM, or the tuner's death (even by SIGKILL), kills its worker at once
        die_with_parent(signal.SIGTERM)
        handle_interrupts()
        # one GPU per env; on the CPU the envs' workers share the host's memory, so each keeps models in its part
        worker_env = {"CUDA_VISIBLE_DEVICES": str(index)} if device == "cuda" else {HOST_WORKERS: str(n_envs)}
        return TuningEnv(task_file, runs_dir=str(run_dir), run_name=f"env{index}", budget=10**9,
                         cache_dir=str(cache_dir), worker_env=worker_env, agent="ppo", resume=resume,
                         report_records=True, compile_cache=True)  # a search, as tune's own session
    return make


def _stop_env_processes(env: SubprocVecEnv, grace_s: float = 5.0) -> None:
    """Ctrl-C or SIGTERM: SIGTERM each env process (its handler kills its measuring worker), SIGKILL stragglers."""
    for process in env.processes:
        process.terminate()
    for process in env.processes:
        process.join(grace_s)
        if process.is_alive():
            process.kill()
    env.closed = True  # nothing left to close: SubprocVecEnv's own close() would wait on dead pipes


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

    def __init__(self, policy: str | None = None, save_to: str | None = None, n_envs: int = 1):
        if n_envs < 1:
            raise UserError("must be a positive number of environments", field="--envs", value=n_envs)
        self.policy = policy
        self.save_to = save_to
        self.n_envs = n_envs
        self.saved: Path | None = None

    def describe(self) -> dict[str, Any]:
        """Hyperparameters and the policy it started from."""
        return {"agent": self.name, "policy": self.policy, "envs": self.n_envs,
                **{key: value for key, value in HYPERPARAMETERS.items() if key != "policy_kwargs"}}

    def search(self, session: TuningSession, seed: int) -> None:
        """Train MaskablePPO on the shared session until the budget is spent, then save the policy.

        With ``n_envs`` > 1 the envs run in subprocesses (SubprocVecEnv), each with its own measurement
        worker (its own GPU on CUDA) and its records under ``<run>/env<i>/``, all on one cache and one budget.
        """
        env: Any = TuningEnv(session=session) if self.n_envs == 1 else self._parallel_envs(session)
        callback: BaseCallback = (StopWhenBudgetSpent(session) if self.n_envs == 1
                                  else ParallelBudget(session, self.n_envs))
        try:
            if self.policy:
                model = MaskablePPO.load(self.policy, env=env, seed=seed)
            else:
                model = MaskablePPO("MlpPolicy", env, seed=seed, verbose=0, device="cpu", **HYPERPARAMETERS)
            model.set_logger(Logger(folder=None, output_formats=[SessionWriter(session)]))
            with contextlib.suppress(BudgetExhausted):  # a measurement the time left does not fit: policy kept
                model.learn(total_timesteps=session.max_proposals * self.n_envs, callback=callback)
        except KeyboardInterrupt:
            if self.n_envs > 1:
                _stop_env_processes(env)  # close() would wait for envs busy measuring
            raise
        finally:
            if self.n_envs > 1:
                env.close()  # returns at once after _stop_env_processes
        self._save(model, session)

    def _parallel_envs(self, session: TuningSession) -> SubprocVecEnv:
        evaluator = session.evaluator
        resume = (evaluator.run_dir / "env0" / "records.jsonl").is_file()  # env records there: a resumed run
        factories = [_env_factory(str(evaluator.task.source), evaluator.run_dir, index, self.n_envs,
                                  evaluator.cache.folder,
                                  evaluator.fingerprint["device"], resume) for index in range(self.n_envs)]
        return SubprocVecEnv(factories, start_method="spawn")

    def _save(self, model: MaskablePPO, session: TuningSession) -> None:
        self.saved = Path(self.save_to) if self.save_to else session.evaluator.run_dir / "policy.zip"
        self.saved.parent.mkdir(parents=True, exist_ok=True)
        model.save(self.saved)
