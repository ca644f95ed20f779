"""Every knob value measured for real on the tiny model, each shown to change the code path it claims."""

from __future__ import annotations

import importlib.util
import subprocess
import sys

import pytest

from tuner.measure.feasibility import Machine, value_rule
from tuner.objective import METRICS

HAVE_TORCHAO = importlib.util.find_spec("torchao") is not None


MEASURED = ("ok", "unstable")  # unstable: real numbers whose repeats did not agree (a busy CI machine)


def _measure(evaluator, **config):
    record = evaluator.evaluate(config)
    assert record.status in (*MEASURED, "infeasible"), record.error
    return record


def test_default_config_has_every_metric(tiny_evaluator):
    record = _measure(tiny_evaluator)
    assert record.status in MEASURED
    assert set(record.metrics) == set(METRICS)
    metrics = record.metrics
    assert metrics["tokens_per_s"] > 0 and metrics["repeats"] >= 3
    if record.status == "ok":  # the last three repeats agreed within 10%, so their spread is small
        assert metrics["cv"] <= 0.10
    assert 0 < metrics["ttft_s"] < metrics["latency_p50_s"] <= metrics["latency_p95_s"]
    expected_tpot = [(metrics["latency_p50_s"] - metrics["ttft_s"]) / (8 - 1)]
    assert metrics["tpot_s"] == pytest.approx(expected_tpot[0], rel=0.5)
    assert metrics["top1_agree"] == 1.0 and metrics["kl"] < 1e-5  # float32 vs the float32 eager reference
    # the config's own memory: 107,200 float32 parameters (0.41 MB) plus what its generate call allocated
    assert record.info["weights_mb"] == pytest.approx(0.409, rel=0.01)
    assert 0 < record.info["activation_peak_mb"] < 10
    assert metrics["peak_mem_mb"] == pytest.approx(record.info["weights_mb"] + record.info["activation_peak_mb"])
    assert record.info["device"] == "cpu" and record.feasible


@pytest.mark.parametrize("batch_size", [1, 2, 4, 8, 16, 32, 64])
def test_batch_size(tiny_evaluator, batch_size):
    record = _measure(tiny_evaluator, batch_size=batch_size)
    assert record.status in MEASURED
    # what generate really returned: b rows of the padded prompt plus exactly 8 new tokens
    assert record.info["output_shape"] == [batch_size, record.info["prompt_tokens"] + 8]


@pytest.mark.parametrize("dtype", ["float32", "bfloat16", "float16"])
def test_dtype(tiny_evaluator, dtype):
    record = _measure(tiny_evaluator, dtype=dtype)
    assert record.status in MEASURED
    assert record.info["weight_dtype"] == dtype
    assert record.info["weights_mb"] == pytest.approx(0.409 if dtype == "float32" else 0.409 / 2, rel=0.01)
    if dtype != "float32":
        assert record.metrics["kl"] > 0


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
def test_attention(tiny_evaluator, attn):
    record = _measure(tiny_evaluator, attn_implementation=attn)
    # the aten ops of a profiled generate call: which attention really ran
    assert record.info["attention_kernel"] == attn
    # numerics: eager float32 is the reference's own code path, bit for bit; sdpa's fused kernel rounds differently
    if attn == "eager":
        assert record.metrics["kl"] == 0.0
    else:
        assert 0 < record.metrics["kl"] < 1e-5


@pytest.mark.parametrize("cache", ["dynamic", "static"])
def test_cache_implementation(tiny_evaluator, cache):
    record = _measure(tiny_evaluator, cache_implementation=cache)
    assert record.info["cache_class"] == {"dynamic": "DynamicCache", "static": "StaticCache"}[cache]


def test_compile_really_compiles_on_cpu(tiny_evaluator):
    eager = _measure(tiny_evaluator, cache_implementation="static", batch_size=2)
    compiled = _measure(tiny_evaluator, cache_implementation="static", compile=True, batch_size=2)
    assert compiled.status in MEASURED and compiled.info["compiled"] is True and eager.info["compiled"] is False
    assert compiled.metrics["warmup_s"] > 5 * eager.metrics["warmup_s"]  # inductor compiles during warmup
    assert compiled.info["compile_cache_hits"] == 0  # measure's figures: a cold compile, whatever came before


def test_a_search_reuses_a_graph_compiled_before_and_says_so(tmp_path, tiny_task, monkeypatch):
    from tuner.evaluation.evaluator import Evaluator

    inductor = tmp_path / "inductor"  # a fresh one: nothing compiled by another test is found there
    monkeypatch.setenv("TORCHINDUCTOR_CACHE_DIR", str(inductor))
    runs = tmp_path / "runs"
    with Evaluator(tiny_task, runs / "tiny", use_cache=False, compile_cache=True) as evaluator:
        first = _measure(evaluator, cache_implementation="static", compile=True, batch_size=2)
        again = evaluator.evaluate(first.config, fresh=True)  # a confirmation: the same graph, dynamo reset between
    assert first.info["compile_cache_hits"] == 0 and again.info["compile_cache_hits"] >= 1
    assert again.info["compiled"] is True and again.status in MEASURED
    assert any(inductor.iterdir())  # where torch keeps them, never in the runs folder (inductor loads what is there)
    assert not [path for path in runs.rglob("*") if path.suffix in (".so", ".pkl", ".py")]


def test_compile_without_static_cache_is_infeasible(tiny_evaluator):
    record = _measure(tiny_evaluator, compile=True, cache_implementation="dynamic")
    assert record.status == "infeasible" and "compile requires cache_implementation == static" in record.error[
        "message"]
    assert record.objective == -20.0 and not record.feasible


def test_int8_dynamic_quantizes_linear_layers(tiny_evaluator):
    record = _measure(tiny_evaluator, quantization="int8-dynamic")
    assert record.status in MEASURED and record.info["quantized_modules"] == 15  # 2 layers x 7 + lm_head
    assert record.metrics["kl"] > 0


@pytest.mark.parametrize("quantization", ["int8-weight-only", "int4-weight-only"])
def test_weight_only_quantization_runs_exactly_where_the_mask_allows_it(tiny_evaluator, quantization):
    record = _measure(tiny_evaluator, quantization=quantization)
    if quantization in tiny_evaluator.runnable_values()["quantization"]:
        assert record.status in MEASURED and record.info["quantized_modules"] == 15
    else:  # refused by the worker for the reason the mask used
        assert record.status == "infeasible"
        assert record.error["message"] == value_rule("quantization", quantization, Machine.here("cpu"))
    assert (record.status in MEASURED) == (HAVE_TORCHAO and quantization == "int8-weight-only")  # int4 needs CUDA


def test_without_torchao_weight_only_is_masked_and_refused_by_the_same_rule():
    code = ("import sys; sys.modules['torchao'] = None  # as if it were not installed\n"
            "from tuner.measure.feasibility import Machine, hf_space, runnable_values, why_infeasible\n"
            "machine = Machine.here('cpu')\n"
            "print(runnable_values(hf_space(), machine)['quantization'])\n"
            "print(why_infeasible({'quantization': 'int8-weight-only'}, machine))\n")
    masked, refused = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                     check=True).stdout.splitlines()
    assert masked == "['none', 'int8-dynamic']"
    assert refused == "int8-weight-only needs torchao, which is not installed (pip install torchao)"


def test_weights_stay_loaded_between_configs(tiny_evaluator):
    _measure(tiny_evaluator, batch_size=2)
    again = _measure(tiny_evaluator, batch_size=4, attn_implementation="eager")
    assert again.info["loaded_weights"] is False
