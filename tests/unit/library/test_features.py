"""Every record carries its task's features (model, hardware, workload), read in the worker (design §14)."""

from __future__ import annotations

import os
from pathlib import Path

from tuner.evaluation.evaluator import Evaluator
from tuner.library.features import distance, feature_vector

# the tiny Llama by hand: 2 layers x (q 64x64 + k,v 64x32 + o 64x64 + gate/up/down 3x64x128 + 2 norms of 64)
# + embedding and untied LM head (259 x 64 each) + final norm (64)
TINY_PARAMETERS = 2 * (4096 + 2 * 2048 + 4096 + 3 * 64 * 128 + 2 * 64) + 2 * 259 * 64 + 64


def test_records_carry_the_tasks_features(tmp_path, tiny_task):
    with Evaluator(tiny_task, tmp_path / "run", use_cache=False) as evaluator:
        rejected_first = evaluator.evaluate({"compile": True, "cache_implementation": "dynamic"})
        measured = evaluator.evaluate({"batch_size": 2})
        rejected_after = evaluator.evaluate({"compile": True, "cache_implementation": "dynamic"})
    assert rejected_first.features is None  # nothing has asked the worker yet: unknown, not invented
    features = measured.features
    assert features["model"] == {"parameters": TINY_PARAMETERS, "layers": 2, "hidden": 64, "heads": 4, "kv_heads": 2,
                                 "vocab": 259, "bytes_per_parameter": 4}
    assert features["hardware"]["device"] == "cpu"
    assert features["hardware"]["compute_units"] == len(os.sched_getaffinity(0))
    assert features["hardware"]["memory_mb"] > 1000
    flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags")).split()
    assert features["hardware"]["native_bfloat16"] == bool({"avx512_bf16", "amx_bf16"} & set(flags))
    assert features["hardware"]["vector_bits"] == (512 if "avx512f" in flags else 256 if "avx2" in flags else 128)
    assert features["workload"] == {"prompt_tokens": measured.info["prompt_tokens"], "new_tokens": 8, "requests": 4}
    assert rejected_after.features == features  # a config rejected without measuring still names its task


def test_a_task_can_be_described_before_anything_is_measured(tmp_path, tiny_task):
    with Evaluator(tiny_task, tmp_path / "run", use_cache=False) as evaluator:
        described = evaluator.describe()
        assert evaluator.measurements == 0
    assert described["model"]["parameters"] == TINY_PARAMETERS


def test_distance_puts_the_same_kind_of_machine_first():
    smol = {"model": {"parameters": 1.35e8, "layers": 30, "hidden": 576}, "hardware": {"device": "cpu"},
            "workload": {"new_tokens": 16}}
    bigger_cpu = {"model": {"parameters": 3.6e8, "layers": 32, "hidden": 960}, "hardware": {"device": "cpu"},
                  "workload": {"new_tokens": 16}}
    same_on_gpu = {**smol, "hardware": {"device": "cuda"}}
    assert distance(smol, bigger_cpu) < distance(smol, same_on_gpu)
    assert distance(smol, smol) == 0.0
    unknown = feature_vector(None)
    assert not unknown.any()  # nothing known: zeros and every "known" flag off
