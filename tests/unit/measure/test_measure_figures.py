"""Recorded figures belong to the config alone: memory, stability and accuracy, measured through real workers."""

from __future__ import annotations

import dataclasses

import pytest

from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession, rankable
from tuner.task import TaskSpec

MEASURED = ("ok", "unstable")
# Two wide layers (~31M parameters, 123 MB in float32): big enough that one more kept model moves the
# worker's RSS far beyond 5%, small enough to measure in seconds.
WIDE = {"architecture": "llama", "hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 2,
        "num_attention_heads": 8, "num_key_value_heads": 2}


def _quick(task: TaskSpec, **model: object) -> TaskSpec:
    """The tiny task with fewer repeats (these tests check memory and accuracy, not timing)."""
    workload = dataclasses.replace(task.workload, max_repeats=3, max_measure_s=5.0)
    if model:
        task = dataclasses.replace(task, model={**task.model, "tiny": model})
    return dataclasses.replace(task, workload=workload)


def _measure(evaluator: Evaluator, config: dict) -> dict:
    record = evaluator.evaluate(config)
    assert record.status in MEASURED, record.error
    return record


def test_peak_mem_does_not_depend_on_what_the_worker_measured_before(tmp_path, tiny_task):
    task = _quick(tiny_task, **WIDE)
    before, target = {"dtype": "float16", "batch_size": 8}, {"dtype": "bfloat16", "batch_size": 1}
    with Evaluator(task, tmp_path / "after", use_cache=False) as evaluator:
        _measure(evaluator, before)  # float16 weights stay loaded next to the float32 reference
        after = _measure(evaluator, target)
    with Evaluator(task, tmp_path / "alone", use_cache=False) as evaluator:
        alone = _measure(evaluator, target)
    # The old figure, the worker's peak RSS, moves with the kept float16 model: this setup tells them apart.
    old_after, old_alone = after.info["worker_peak_rss_mb"], alone.info["worker_peak_rss_mb"]
    assert old_after > 1.05 * old_alone, (old_after, old_alone)
    assert after.metrics["peak_mem_mb"] == pytest.approx(alone.metrics["peak_mem_mb"], rel=0.05)
    # bfloat16 weights of ~31M parameters: about 62 MB, whatever else the worker holds
    assert after.info["weights_mb"] == pytest.approx(alone.info["weights_mb"]) and 55 < alone.info["weights_mb"] < 65


def test_noisy_timing_is_unstable_and_never_ranked_best(tmp_path, tiny_task):
    env = {"INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_TIMING_NOISE": "1"}
    task = dataclasses.replace(tiny_task, workload=dataclasses.replace(tiny_task.workload, max_repeats=6))
    with Evaluator(task, tmp_path / "noisy", use_cache=False, worker_env=env) as evaluator:
        session = TuningSession(evaluator, budget=1)
        record = session.evaluate({})
    assert record.status == "unstable" and record.info["stable"] is False
    window = [record.info["pass_times_s"][index] for index in record.info["window"]]
    assert record.metrics["repeats"] >= 3 and max(window) > 1.1 * min(window)  # the stalls broke agreement
    assert record.feasible and record.objective > 0  # it meets every constraint and scores well...
    assert not rankable(record) and session.best is None  # ...yet it is never called best


def test_accuracy_does_not_depend_on_batch_size(tmp_path, tiny_task):
    # Two fresh workers, so neither record comes from the other's in-memory accuracy cache. int8-dynamic
    # scales activations over a whole batch: scored in the config's own batches, its KL would differ
    # (bfloat16 rows are computed independently on this CPU, so a bfloat16 check could not fail).
    task = _quick(tiny_task)
    kl = {}
    for batch in (1, 8):
        with Evaluator(task, tmp_path / f"b{batch}", use_cache=False) as evaluator:
            record = _measure(evaluator, {"quantization": "int8-dynamic", "batch_size": batch})
        assert record.info["accuracy_cached"] is False
        kl[batch] = record.metrics["kl"]
    assert kl[1] > 0 and kl[1] == kl[8]


def test_kept_models_are_evicted_by_bytes_not_by_count(tiny_task):
    from tuner.measure.backends.hf import HFBackend

    task = tiny_task.worker_spec()
    weights = [{"dtype": dtype, "quantization": quantization} for dtype, quantization in
               (("float32", "none"), ("bfloat16", "none"), ("float16", "none"), ("float32", "int8-dynamic"))]
    roomy = HFBackend(memory_budget=1 << 30)
    for each in weights:
        roomy._model(task, each, "cpu")
    assert len(roomy._models) == 4  # four small models fit 1 GiB: none is dropped for being the fourth
    # 0.6 MB holds the float32 tiny model (0.41 MB) but not it and another: loading one evicts the other
    tight = HFBackend(memory_budget=600_000)
    tight._model(task, weights[0], "cpu")
    tight._model(task, weights[1], "cpu")
    assert len(tight._models) == 1 and tight.kept_bytes == pytest.approx(0.2045 * 2**20, rel=0.01)


def test_a_compiled_config_compiles_its_own_graph_whatever_ran_before(tmp_path, tiny_task):
    # After two batch sizes torch.compile marks the batch dimension dynamic: without a reset between configs, a
    # third compiled batch size would run the earlier configs' dynamic-shape graph and report no warm-up of its own.
    task = _quick(tiny_task)
    compiled = {"cache_implementation": "static", "compile": True}
    with Evaluator(task, tmp_path / "run", use_cache=False) as evaluator:
        records = [_measure(evaluator, {**compiled, "batch_size": size}) for size in (1, 2, 4)]
    assert [record.info["graphs_compiled_in_warmup"] >= 1 for record in records] == [True, True, True], \
        [(record.info["graphs_compiled_in_warmup"], record.metrics["warmup_s"]) for record in records]
