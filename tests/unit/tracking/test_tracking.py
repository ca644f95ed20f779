"""MLflow as a mirror: parent and nested runs, deployable artifacts, an unreachable server, sync."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from tests.helpers import REPLAY, ROOT, TINY


def infertune(*args: str, runs: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600, env={**os.environ, **(env or {})})


def _client(runs: Path) -> MlflowClient:
    return MlflowClient(tracking_uri=f"sqlite:///{(runs / 'mlflow.db').resolve()}")


def _runs(client: MlflowClient, experiment: str) -> list:
    found = client.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment}"
    return client.search_runs([found.experiment_id], max_results=1000)


def test_tune_mirrors_every_trial(tmp_path):
    runs = tmp_path / "runs"
    result = infertune("tune", str(REPLAY), "--agent", "ppo", "--policy", "none", "--budget", "16", "--run", "t",
                       runs=runs)
    assert result.returncode == 0, result.stderr
    mirrored = _runs(_client(runs), "smollm2-cpu-replay")
    parents = [run for run in mirrored if run.data.tags.get("infertune.kind") == "invocation"]
    trials = [run for run in mirrored if run.data.tags.get("infertune.kind") == "trial"]
    records = (runs / "t" / "records.jsonl").read_text().splitlines()
    assert len(parents) == 1 and len(trials) == len(records)
    parent = parents[0]
    assert parent.info.run_name == "t" and parent.data.params["agent"] == "ppo"
    assert parent.data.params["budget"] == "16" and parent.data.params["seed"] == "0"
    assert parent.data.tags["version.mlflow"] and parent.data.metrics["measurements"] == 16
    assert any(key.startswith("train.") for key in parent.data.metrics)  # PPO's own metrics via SB3's logger
    assert all(run.data.tags["mlflow.parentRunId"] == parent.info.run_id for run in trials)
    ok = [run for run in trials if run.data.tags["status"] == "ok"]
    assert ok and all(run.data.metrics["tokens_per_s"] > 0 and run.data.params["dtype"] for run in ok)
    deployable = [run for run in trials if run.data.tags.get("deployable") == "true"]
    assert len(deployable) == 1
    client = _client(runs)
    names = {item.path for item in client.list_artifacts(deployable[0].info.run_id)}
    assert {"config.json", "export", "pareto.png", "trials.csv"} <= names
    exported = {item.path for item in client.list_artifacts(deployable[0].info.run_id, "export")}
    assert exported == {"export/vllm.yaml", "export/sglang.yaml", "export/tgi.sh", "export/trtllm.yaml",
                        "export/hf.json"}
    vllm = (runs / "t" / "export" / "vllm.yaml").read_text()
    assert f"MLflow run: {deployable[0].info.run_id}" in vllm


def test_tracking_uri_from_environment_and_measure_logs(tmp_path):
    runs = tmp_path / "runs"
    elsewhere = tmp_path / "team.db"
    result = infertune("measure", str(TINY), "--set", "batch_size=2", "--run", "m", runs=runs,
                       env={"MLFLOW_TRACKING_URI": f"sqlite:///{elsewhere}"})
    assert result.returncode == 0, result.stderr
    assert not (runs / "mlflow.db").exists()
    mirrored = _runs(MlflowClient(tracking_uri=f"sqlite:///{elsewhere}"), "tiny-cpu")
    assert sorted(run.data.tags["infertune.kind"] for run in mirrored) == ["invocation", "trial"]


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]  # closed again when the socket goes


def test_unreachable_server_loses_nothing_then_sync(tmp_path):
    runs = tmp_path / "runs"
    started = time.monotonic()
    result = infertune("--tracking-uri", f"http://127.0.0.1:{_closed_port()}", "tune", str(REPLAY), "--agent",
                       "random", "--budget", "6", "--run", "offline", runs=runs)
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stderr
    records = (runs / "offline" / "records.jsonl").read_text().splitlines()
    assert len(records) >= 6 and (runs / "offline" / "summary.json").is_file()
    warnings = [line for line in result.stderr.splitlines() if "MLflow upload" in line]
    # the first failure, then the count: the parent run and each trial (a trial without a parent is not tried)
    assert warnings[1:] == [f"infertune: warning: {1 + len(records)} MLflow upload(s) failed; infertune sync "
                            "offline uploads what is missing"], result.stderr
    assert warnings[0].startswith("infertune: warning: MLflow upload failed (start run): ")
    assert elapsed < 120
    synced = infertune("sync", "offline", runs=runs)
    assert synced.returncode == 0, synced.stderr
    assert f"{len(records)} trial runs added, 0 already" in synced.stdout
    again = infertune("sync", "offline", runs=runs)
    assert again.returncode == 0 and f"0 trial runs added, {len(records)} already" in again.stdout
    mirrored = _runs(_client(runs), "smollm2-cpu-replay")
    assert len([run for run in mirrored if run.data.tags["infertune.kind"] == "trial"]) == len(records)
    assert len([run for run in mirrored if run.data.tags["infertune.kind"] == "invocation"]) == 1
    assert len([run for run in mirrored if run.data.tags.get("deployable") == "true"]) == 1


def test_secrets_stay_out_of_mlflow(tmp_path):
    runs = tmp_path / "runs"
    secret = "hf_SECRETxyz123"
    result = infertune("tune", str(REPLAY), "--agent", "random", "--budget", "3", "--run", "s", runs=runs,
                       env={"HF_TOKEN": secret})
    assert result.returncode == 0
    for run in _runs(_client(runs), "smollm2-cpu-replay"):
        assert secret not in repr(run.data.params) + repr(run.data.tags)
    for path in (runs / "s").rglob("*"):
        if path.is_file() and path.suffix in (".json", ".jsonl", ".yaml", ".sh", ".env", ".csv"):
            assert secret not in path.read_text()


@pytest.mark.parametrize("agents", ["optuna,random"])
def test_compare_is_one_parent_with_every_trial(tmp_path, agents):
    runs = tmp_path / "runs"
    result = infertune("compare", str(REPLAY), "--agents", agents, "--budget", "4", "--seeds", "2", "--run", "c",
                       runs=runs)
    assert result.returncode == 0, result.stderr
    mirrored = _runs(_client(runs), "smollm2-cpu-replay")
    parents = [run for run in mirrored if run.data.tags["infertune.kind"] == "invocation"]
    trials = [run for run in mirrored if run.data.tags["infertune.kind"] == "trial"]
    records = sum(len(path.read_text().splitlines()) for path in (runs / "c").glob("*/records.jsonl"))
    assert len(parents) == 1 and parents[0].info.run_name == "c" and len(trials) == records


def test_sync_tags_the_best_of_parallel_envs(tmp_path):
    """With ``--envs N`` the records live in env<i>/ and belong to ``env<i>``: sync still tags the best one."""
    runs = tmp_path / "runs"
    tuned = infertune("tune", str(REPLAY), "--agent", "ppo", "--policy", "none", "--envs", "2", "--budget", "8",
                      "--run", "vec", "--no-mlflow", runs=runs)
    assert tuned.returncode == 0, tuned.stderr[-3000:]
    records = [json.loads(line) for index in range(2)
               for line in (runs / "vec" / f"env{index}" / "records.jsonl").read_text().splitlines()]
    assert {record["run"] for record in records} == {"env0", "env1"}
    ranked = [record for record in records if record["status"] == "ok" and record["feasible"]]
    best = max(record["objective"] for record in ranked)
    synced = infertune("sync", "vec", runs=runs)
    assert synced.returncode == 0, synced.stderr
    trials = [run for run in _runs(_client(runs), "smollm2-cpu-replay") if run.data.tags["infertune.kind"] == "trial"]
    assert len(trials) == len(records)
    deployable = [run for run in trials if run.data.tags.get("deployable") == "true"]
    assert len(deployable) == 1
    tags = deployable[0].data.tags
    record = next(item for item in records
                  if item["run"] == tags["infertune.run"] and item["trial"] == int(tags["infertune.trial"]))
    assert record in ranked and record["objective"] == best == deployable[0].data.metrics["objective"]
    summary = json.loads((runs / "vec" / "summary.json").read_text())
    assert record["config"] == summary["best"]["config"]
    names = {item.path for item in _client(runs).list_artifacts(deployable[0].info.run_id)}
    assert {"config.json", "export", "trials.csv"} <= names
