"""PPO over N environments in subprocesses (SubprocVecEnv): one budget, one cache, records per env."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.helpers import REPLAY, ROOT, TINY
from tuner.evaluation.resume import spent_budget
from tuner.records import read_records


def test_two_envs_spend_exactly_one_budget_on_one_cache(tmp_path):
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "tune", str(REPLAY), "--agent", "ppo",
               "--policy", "none", "--envs", "2", "--budget", "12", "--run", "vec", "--no-mlflow"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = tmp_path / "vec"
    per_env = [read_records(run / f"env{index}" / "records.jsonl") for index in range(2)]
    assert all(per_env)  # both environments measured
    summary = json.loads((run / "summary.json").read_text())
    spent = sum(spent_budget(record) for records in per_env for record in records)
    assert summary["measurements"] == spent == 12
    assert summary["agent"]["envs"] == 2 and (run / "policy.zip").is_file()
    cached_results = list((run / "cache").glob("*.json"))
    measured_configs = {json.dumps(record.config, sort_keys=True) for records in per_env for record in records
                        if spent_budget(record) and record.status == "ok"}  # unstable is never cached
    assert len(cached_results) >= len(measured_configs) > 0  # one cache folder serves both envs
    assert "[12/12]" in result.stdout


def test_parallel_workers_on_the_cpu_split_the_memory_they_may_keep_models_in(tmp_path, tiny_task):
    from tuner.agents.ppo_search import _env_factory
    from tuner.evaluation.evaluator import Evaluator
    from tuner.measure.backends.model_store import HOST_WORKERS

    # what the CPU envs of `--envs 2` tell their workers
    env = _env_factory(str(TINY), tmp_path / "vec", 1, 2, tmp_path / "cache", "cpu", False)()
    worker_env = env.session.evaluator.measurer.env
    env.close()

    def budget_share(extra_env: dict) -> float:
        """The share of the memory free at its first load that the worker's kept models may fill."""
        with Evaluator(tiny_task, tmp_path / f"run{len(extra_env)}", use_cache=False, worker_env=extra_env) as one:
            info = one.evaluate({"batch_size": 2}).info
            return info["memory_budget_mb"] / info["memory_free_at_budget_mb"]

    alone, shared = budget_share({}), budget_share({HOST_WORKERS: worker_env[HOST_WORKERS]})
    # a worker that shares the host with another keeps half as much (as a share: the free memory itself moves
    # with whatever else runs between the two measurements)
    assert shared == pytest.approx(alone / 2, rel=0.01)
