"""The embedded default, SmolLM2-135M-Instruct, measured end to end on the CPU through the command line."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import LABELED_EVERY, ROOT
from tuner.objective import METRICS

DESIGN_RECORD_KEYS = {"schema", "run", "task", "space", "trial", "agent", "config", "status", "error", "metrics",
                      "objective", "feasible", "cached", "fingerprint", "started_at", "duration_s"}


def lighter_task(folder: Path, labeled_every: int | None = None, **workload: object) -> Path:
    """envs/smollm2-cpu.yaml with a shorter timed workload (these tests check records, not speed).

    ``labeled_every``: keep every n-th item of its labeled set, every kind of item represented (None: none).
    """
    task = yaml.safe_load((ROOT / "envs" / "smollm2-cpu.yaml").read_text())
    task["workload"].update(workload)
    labeled = task["accuracy"].pop("labeled")
    if labeled_every:
        lines = (ROOT / "envs" / labeled["file"]).read_text().splitlines()
        task["accuracy"]["labeled"] = {"items": [json.loads(line) for line in lines[::labeled_every]],
                                       "new_tokens": labeled["new_tokens"]}
    (folder / "smollm2-cpu.yaml").write_text(yaml.safe_dump(task))
    return folder / "smollm2-cpu.yaml"


@pytest.fixture(scope="module")
def records(tmp_path_factory) -> dict[str, dict]:
    runs = tmp_path_factory.mktemp("runs")
    task = lighter_task(runs, labeled_every=LABELED_EVERY, num_requests=2, new_tokens=4, max_measure_s=20,
                        max_repeats=4, min_repeat_s=0.2)
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "measure", str(task),
               "--set", "dtype=float32,bfloat16", "--set", "batch_size=1,4", "--json", "--no-mlflow"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    found = [json.loads(line) for line in result.stdout.splitlines()]
    return {f"{record['config']['dtype']}-{record['config']['batch_size']}": record for record in found}


def test_every_metric_and_record_field(records):
    for record in records.values():
        assert record["status"] in ("ok", "unstable"), record["error"]
        assert set(record) >= DESIGN_RECORD_KEYS and record["schema"] == 1
        assert set(record["metrics"]) == set(METRICS)
        assert record["space"] == "hf-transformers@1" and record["task"] == "smollm2-cpu"
        assert record["fingerprint"]["device"] == "cpu" and record["fingerprint"]["torch"]
        assert record["metrics"]["tokens_per_s"] > 0
        # three agreeing passes, or the time cap came first (then, by design, it is unstable)
        assert record["metrics"]["repeats"] >= 3 or record["status"] == "unstable"


def test_float32_agrees_with_its_reference(records):
    for batch in (1, 4):
        metrics = records[f"float32-{batch}"]["metrics"]
        assert metrics["top1_agree"] == 1.0
        assert metrics["kl"] < 1e-5


def test_bfloat16_loses_a_little_accuracy(records):
    metrics = records["bfloat16-4"]["metrics"]
    assert 0.9 < metrics["top1_agree"] < 1.0
    assert 1e-5 < metrics["kl"] < 0.05
    # (that accuracy does not depend on batch size is tested with fresh workers: test_measure_figures.py)


def test_memory_is_the_configs_own(records):
    # 134.5M parameters, the tied embedding counted once: 513 MB in float32, half in bfloat16, whatever
    # else the worker holds (the float32 reference stays loaded next to every bfloat16 config)
    for batch in (1, 4):
        assert records[f"float32-{batch}"]["info"]["weights_mb"] == pytest.approx(513.1, rel=0.01)
        assert records[f"bfloat16-{batch}"]["info"]["weights_mb"] == pytest.approx(256.6, rel=0.01)
    for record in records.values():
        info = record["info"]
        assert record["metrics"]["peak_mem_mb"] == pytest.approx(info["weights_mb"] + info["activation_peak_mb"])
    # a batch of 4 holds 4 KV caches and 4 rows of logits: its own peak is larger
    assert records["bfloat16-4"]["info"]["activation_peak_mb"] > records["bfloat16-1"]["info"]["activation_peak_mb"]


def test_weights_load_once_per_dtype(records):
    assert records["float32-4"]["info"]["loaded_weights"] is False
    assert records["bfloat16-4"]["info"]["loaded_weights"] is False


def test_the_labeled_set_scores_the_float32_weights_like_the_reference(records):
    # 16 labeled items, greedy answers parsed and exact-matched: the float32 reference gets 7 right
    reference = records["float32-1"]["info"]["reference_metrics"]["task_accuracy"]
    assert reference == pytest.approx(7 / 16)
    assert records["float32-1"]["metrics"]["task_accuracy"] == pytest.approx(reference, abs=1 / 16)
    assert abs(records["bfloat16-1"]["metrics"]["task_accuracy"] - reference) <= 0.15


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="2 tensor-parallel ranks need 2 CPU cores")
def test_two_shards_match_the_unsharded_model(tmp_path):
    # SmolLM2 has 9 query / 3 KV heads: not divisible by 2, so the ranks hold KV groups 2 + 1.
    # The labeled set is left out: the ranks score it too (test_accuracy_paths.py), for a minute more.
    task = lighter_task(tmp_path, num_requests=2, new_tokens=4, max_measure_s=20, max_repeats=3)  # checked: the split
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "measure",
               str(task), "--set", "shard_count=2", "--json", "--no-cache", "--no-mlflow"]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=1200)
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["status"] in ("ok", "unstable"), record["error"]
    assert record["metrics"]["top1_agree"] >= 0.99 and record["metrics"]["kl"] < 1e-4
    split = record["info"]["tensor_parallel"]
    assert (split["q_heads"], split["kv_heads"], split["mlp_rows"]) == ([0, 6], [0, 2], [0, 768])
