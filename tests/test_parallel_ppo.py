"""PPO over N environments in subprocesses (SubprocVecEnv): one budget, one cache, records per env."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPLAY, ROOT, TINY
from tuner.journal import spent_budget
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
                        if spent_budget(record) and record.status != "infeasible"}
    assert len(cached_results) >= len(measured_configs) > 0  # one cache folder serves both envs
    assert "[12/12]" in result.stdout


def test_parallel_workers_on_the_cpu_split_the_memory_they_may_keep_models_in(tmp_path):
    def budgets_mb(n_envs: int) -> list[float]:
        runs = tmp_path / f"runs{n_envs}"  # a cache of its own: every record below was measured by this run
        command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(TINY), "--agent",
                   "ppo", "--policy", "none", "--envs", str(n_envs), "--budget", "2", "--run", f"envs{n_envs}",
                   "--no-mlflow"]
        result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        run = runs / f"envs{n_envs}"
        folders = [run / f"env{index}" for index in range(n_envs)] if n_envs > 1 else [run]
        return [record.info["memory_budget_mb"] for folder in folders
                for record in read_records(folder / "records.jsonl") if "memory_budget_mb" in record.info]

    alone, shared = budgets_mb(1), budgets_mb(2)
    assert alone and shared
    assert max(shared) < 0.6 * min(alone)  # two workers on one host: each about half of what one may keep
