"""shard_count > 1 runs the model tensor-parallel for real: rank processes over gloo, uneven head splits."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from types import SimpleNamespace

import pytest

from tests.helpers import ROOT, TINY, fault_evaluator
from tuner.measure.backends.infeasible import Infeasible
from tuner.measure.backends.tensor_parallel import even_ranges, plan_shard

CORES = len(os.sched_getaffinity(0))
MEASURED = ("ok", "unstable")
needs_two_cores = pytest.mark.skipif(CORES < 2, reason="tensor parallelism over 2 ranks needs 2 CPU cores")
SMOLLM2_SHAPE = SimpleNamespace(num_attention_heads=9, num_key_value_heads=3, hidden_size=576,
                                intermediate_size=1536)


def test_even_ranges_cover_everything_once():
    assert even_ranges(3, 2) == [(0, 2), (2, 3)]
    assert even_ranges(1536, 2) == [(0, 768), (768, 1536)]
    assert even_ranges(10, 4) == [(0, 3), (3, 6), (6, 8), (8, 10)]


def test_smollm2_heads_split_by_kv_group():
    # 9 query heads share 3 KV heads (groups of 3): 2 ranks get KV heads 2 + 1, so query heads 6 + 3.
    first, second = (plan_shard(SMOLLM2_SHAPE, rank, 2) for rank in (0, 1))
    assert (first.kv_heads, first.q_heads, first.mlp_rows) == ((0, 2), (0, 6), (0, 768))
    assert (second.kv_heads, second.q_heads, second.mlp_rows) == ((2, 3), (6, 9), (768, 1536))
    assert first.head_dim == 64


def test_more_shards_than_kv_heads_is_infeasible():
    with pytest.raises(Infeasible, match="shard_count 4 exceeds the model's 3 key/value heads"):
        plan_shard(SMOLLM2_SHAPE, 0, 4)


def _cli_measure(tmp_path, task, *settings: str) -> list[dict]:
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path), "measure", str(task), "--json",
               "--no-cache", "--no-mlflow", *[part for setting in settings for part in ("--set", setting)]]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return [json.loads(line) for line in result.stdout.splitlines()]


@needs_two_cores
def test_cli_two_shards_match_the_unsharded_model(tmp_path):
    (record,) = _cli_measure(tmp_path, TINY, "shard_count=2")
    assert record["status"] in MEASURED, record["error"]
    assert record["metrics"]["top1_agree"] >= 0.99 and record["metrics"]["kl"] < 1e-4
    split = record["info"]["tensor_parallel"]
    assert split["world"] == 2 and split["q_heads"] == [0, 2] and split["kv_heads"] == [0, 1]
    assert "gloo" in split["method"]
    per_rank = record["info"]["peak_mem_mb_per_rank"]
    assert len(per_rank) == 2 and record["metrics"]["peak_mem_mb"] == pytest.approx(sum(per_rank))


def test_cli_shards_above_the_cores_are_infeasible(tmp_path):
    too_many = next(n for n in (2, 4, 8) if n > CORES)
    (record,) = _cli_measure(tmp_path, TINY, f"shard_count={too_many}")
    assert record["status"] == "infeasible"
    assert record["error"]["message"] == f"shard_count {too_many} exceeds the {CORES} CPU cores visible here"


@needs_two_cores
def test_sharded_configs_compose_with_other_knobs(tiny_evaluator):
    quantized = tiny_evaluator.evaluate({"shard_count": 2, "quantization": "int8-dynamic"})
    assert quantized.status in MEASURED, quantized.error
    # every projection of both layers is quantized inside its shard (4 attention + 3 MLP per layer)
    assert quantized.info["quantized_modules"] >= 14
    compiled = tiny_evaluator.evaluate({"shard_count": 2, "cache_implementation": "static", "compile": True,
                                        "batch_size": 2})
    assert compiled.status in MEASURED, compiled.error
    assert compiled.info["compiled"] and compiled.info["graphs_compiled_in_warmup"] > 0
    assert compiled.info["cache_class"] == "StaticCache" and compiled.metrics["top1_agree"] >= 0.99
    back_to_one = tiny_evaluator.evaluate({"shard_count": 1, "batch_size": 2})
    assert back_to_one.status in MEASURED and "tensor_parallel" not in back_to_one.info


def _rank_processes(token: str) -> set[int]:
    """Rank processes started under this test's ``token`` (other test runs on the machine spawn ranks too);
    the environment stays with a process even when it is orphaned, unlike its parent."""
    marker = f"INFERTUNE_TEST_TOKEN={token}".encode()
    found = set()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline, open(f"/proc/{entry}/environ", "rb") as env:
                    if b"multiprocessing.spawn" in cmdline.read() and marker in env.read().split(b"\0"):
                        found.add(int(entry))
            except OSError:
                continue
    return found


@needs_two_cores
def test_a_dying_rank_is_a_crash_and_the_next_sharded_config_runs(tmp_path, tiny_task, monkeypatch):
    token = uuid.uuid4().hex
    monkeypatch.setenv("INFERTUNE_TEST_TOKEN", token)  # the worker and its ranks inherit it
    with fault_evaluator(tiny_task, tmp_path / "run") as evaluator:
        failed = evaluator.evaluate({"shard_count": 2}, fault="rank1:signal")
        assert failed.status == "crash"
        assert failed.error["message"].startswith("tensor-parallel rank 1 died (exit code -6)")
        after = evaluator.evaluate({"shard_count": 2, "batch_size": 2})
        assert after.status in MEASURED and after.metrics["top1_agree"] >= 0.99
        assert len(_rank_processes(token)) == 2  # the token finds this group's live ranks
        raised = evaluator.evaluate({"shard_count": 2, "batch_size": 4}, fault="rank0:raise")
        assert raised.status == "error" and "rank 0: InjectedError" in raised.error["message"]
    deadline = time.monotonic() + 10
    while _rank_processes(token) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _rank_processes(token)  # no rank outlives its evaluator
