"""The one serving flag mapping (design §10, §15): each engine's launch line, its gaps, and the exports that agree."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tuner.export import TARGETS, ExportContext, export_to, hf
from tuner.export.common import SERVING_NOTE, STATIC_BATCH_NOTE
from tuner.serving.flags import (
    CB_DEFAULTS,
    ENGINES,
    SERVING_KNOBS,
    engine_options,
    launch_command,
    transformers_cb_fields,
    transformers_serve_argv,
)

MODEL, HOST, PORT = "/models/SmolLM2-135M-Instruct", "127.0.0.1", 8123
# every serving knob at a value the engines can take, and the same with every switch flipped
FULL = {"max_batch_tokens": 2048, "max_num_seqs": 24, "kv_cache_blocks": 600, "block_size": 32, "prefix_caching": True,
        "scheduler": "fifo", "async_batching": True, "compile": True, "dtype": "bfloat16", "quantization": "none",
        "shard_count": 2}
FLIPPED = {**FULL, "kv_cache_blocks": 0, "prefix_caching": False, "scheduler": "prefill_first",
           "async_batching": False, "compile": False}
TOKENS = 600 * 32  # the KV cache of FULL in tokens, for the engines that size it in tokens
LOAD = {"process": "poisson", "rate": 2.0, "num_requests": 32}
SLO = {"ttft_p95_s": 2.0, "itl_p95_s": 0.2}
METRICS = {"goodput_rps": 1.75, "requests_per_s": 2.0, "ttft_p95_s": 0.412, "tokens_per_s": 88.1}
ENGINE_OF = {"vllm": "vllm", "sglang": "sglang", "tgi": "tgi", "trtllm": "trtllm", "hf": "transformers"}

# What each engine's launch line must say for FULL and FLIPPED (design §10's serving table): options after the
# model and address, as strings (True for a bare switch), the environment, and the knobs reported as gaps.
EXPECTED: dict[tuple[str, str], tuple[dict[str, Any], dict[str, str], list[str]]] = {
    ("vllm", "full"): ({"tensor-parallel-size": "2", "dtype": "bfloat16", "max-num-seqs": "24",
                        "max-num-batched-tokens": "2048", "num-gpu-blocks-override": "600", "block-size": "32",
                        "enable-prefix-caching": True, "scheduling-policy": "fcfs", "async-scheduling": True},
                       {}, []),
    ("vllm", "flipped"): ({"tensor-parallel-size": "2", "dtype": "bfloat16", "max-num-seqs": "24",
                           "enforce-eager": True, "max-num-batched-tokens": "2048", "block-size": "32",
                           "no-enable-prefix-caching": True, "no-async-scheduling": True}, {}, ["scheduler"]),
    ("sglang", "full"): ({"tp-size": "2", "dtype": "bfloat16", "max-running-requests": "24",
                          "enable-torch-compile": True, "chunked-prefill-size": "2048", "max-prefill-tokens": "2048",
                          "max-total-tokens": str(TOKENS), "page-size": "32", "schedule-policy": "fcfs"}, {}, []),
    ("sglang", "flipped"): ({"tp-size": "2", "dtype": "bfloat16", "max-running-requests": "24",
                             "cuda-graph-backend-decode": "disabled", "cuda-graph-backend-prefill": "disabled",
                             "chunked-prefill-size": "2048", "max-prefill-tokens": "2048", "page-size": "32",
                             "disable-radix-cache": True, "disable-overlap-schedule": True}, {}, ["scheduler"]),
    ("tgi", "full"): ({"num-shard": "2", "max-concurrent-requests": "24", "max-batch-size": "24", "dtype": "bfloat16",
                       "max-batch-prefill-tokens": "2048", "max-batch-total-tokens": str(TOKENS)},
                      {"PREFIX_CACHING": "1"}, ["block_size", "async_batching"]),
    ("tgi", "flipped"): ({"num-shard": "2", "max-concurrent-requests": "24", "max-batch-size": "24",
                          "dtype": "bfloat16", "cuda-graphs": "0", "max-batch-prefill-tokens": "2048"},
                         {"PREFIX_CACHING": "0"}, ["block_size", "scheduler", "async_batching"]),
    ("transformers", "full"): ({"continuous-batching": True, "dtype": "bfloat16", "compile": True,
                                "cb-block-size": "32", "cb-num-blocks": "600", "cb-max-batch-tokens": "2048"},
                               {}, ["shard_count", "max_num_seqs", "async_batching", "compile"]),
    ("transformers", "flipped"): ({"continuous-batching": True, "dtype": "bfloat16", "cb-block-size": "32",
                                   "cb-max-batch-tokens": "2048", "no-cb-use-cuda-graph": True},
                                  {}, ["shard_count", "max_num_seqs", "prefix_caching", "async_batching",
                                       "scheduler"]),
}
TRTLLM_YAML = {
    "full": {"tensor_parallel_size": 2, "dtype": "bfloat16", "max_batch_size": 24, "max_num_tokens": 2048,
             "kv_cache_config": {"free_gpu_memory_fraction": 0.9, "max_tokens": TOKENS, "tokens_per_block": 32,
                                 "enable_block_reuse": True},
             "torch_compile_config": {"enable_fullgraph": True}},
    "flipped": {"tensor_parallel_size": 2, "dtype": "bfloat16", "max_batch_size": 24, "max_num_tokens": 2048,
                "kv_cache_config": {"free_gpu_memory_fraction": 0.9, "tokens_per_block": 32,
                                    "enable_block_reuse": False},
                "cuda_graph_config": None, "disable_overlap_scheduler": True},
}
CONFIGS = {"full": FULL, "flipped": FLIPPED}


def options_of(argv: list[str]) -> dict[str, Any]:
    """``--key value`` / bare ``--key`` tokens as {key: value or True}."""
    options: dict[str, Any] = {}
    index = 0
    while index < len(argv):
        assert argv[index].startswith("--"), argv[index:]
        key = argv[index].removeprefix("--")
        assert key not in options, f"--{key} given twice"
        if index + 1 < len(argv) and not argv[index + 1].startswith("--"):
            options[key], index = argv[index + 1], index + 2
        else:
            options[key], index = True, index + 1
    return options


def knobs_of(gaps: list[str]) -> list[str]:
    """The knob each gap sentence names (it opens with ``knob=value:``)."""
    return [gap.split("=", 1)[0] for gap in gaps]


def launch_options(engine: str, argv: list[str]) -> dict[str, Any]:
    """The options of a launch line after its program, model and address (which are checked here)."""
    if engine == "vllm":
        assert argv[:3] == ["vllm", "serve", MODEL]
        rest = argv[3:]
    elif engine == "sglang":
        assert argv[:5] == ["python", "-m", "sglang.launch_server", "--model-path", MODEL]
        rest = argv[5:]
    elif engine == "tgi":
        assert argv[:3] == ["text-generation-launcher", "--model-id", MODEL]
        rest = argv[3:]
    else:
        assert argv[:3] == ["transformers", "serve", MODEL]  # the model is the positional FORCE_MODEL
        rest = argv[3:]
    options = options_of(rest)
    host = "hostname" if engine == "tgi" else "host"
    assert options.pop(host) == HOST and options.pop("port") == str(PORT)
    return options


@pytest.mark.parametrize(("engine", "name"), list(EXPECTED))
def test_launch_line_matches_design_table(engine, name):
    line = launch_command(engine, MODEL, CONFIGS[name], HOST, PORT)
    options, env, gapped = EXPECTED[engine, name]
    assert launch_options(engine, line.argv) == options
    assert line.env == env and line.config_file is None
    assert knobs_of(line.gaps) == gapped
    for gap in line.gaps:  # one sentence naming the knob's value and the engine
        knob = gap.split("=", 1)[0]
        assert gap.startswith(f"{knob}={CONFIGS[name][knob]}: ") and gap.count("\n") == 0
        assert ("transformers serve" if engine == "transformers" else {"vllm": "vLLM", "sglang": "SGLang",
                                                                       "tgi": "TGI"}[engine]) in gap


@pytest.mark.parametrize("name", list(TRTLLM_YAML))
def test_trtllm_knobs_live_in_its_config_yaml(name):
    line = launch_command("trtllm", MODEL, CONFIGS[name], HOST, PORT)
    assert line.argv == ["trtllm-serve", MODEL, "--host", HOST, "--port", str(PORT), "--config", "trtllm.yaml"]
    assert line.config_file is not None and line.config_file[0] == "trtllm.yaml"
    assert yaml.safe_load(line.config_file[1]) == TRTLLM_YAML[name]
    assert knobs_of(line.gaps) == ([] if name == "full" else ["scheduler"])


def test_design_facts_that_must_never_come_back():
    """Removed or refused switches (§10): SGLang's --torchao-config and --disable-cuda-graph, TGI's dtype+quantize."""
    for config in (FLIPPED, {**FLIPPED, "quantization": "int4-weight-only"}):
        sglang = launch_command("sglang", MODEL, config, HOST, PORT).argv
        assert "--torchao-config" not in sglang and "--disable-cuda-graph" not in sglang
    tgi = launch_command("tgi", MODEL, {**FULL, "quantization": "int8-weight-only"}, HOST, PORT)
    tgi_options = launch_options("tgi", tgi.argv)
    assert tgi_options["quantize"] == "eetq" and "dtype" not in tgi_options
    assert "dtype" in knobs_of(tgi.gaps)
    assert "dtype" in knobs_of(launch_command("tgi", MODEL, {"dtype": "float32"}, HOST, PORT).gaps)


@pytest.mark.parametrize("quantization", ["int8-weight-only", "int4-weight-only", "int8-dynamic"])
def test_quantization_per_engine(quantization):
    config = {"quantization": quantization}
    vllm = launch_command("vllm", MODEL, config, HOST, PORT)
    sglang = launch_command("sglang", MODEL, config, HOST, PORT)
    if quantization == "int8-dynamic":  # CPU-only: no serving engine has it
        assert "--quantization" not in vllm.argv and "--quantization" not in sglang.argv
    else:
        assert launch_options("vllm", vllm.argv)["quantization"] == "torchao"  # needs a torchao checkpoint: warned
        assert launch_options("sglang", sglang.argv)["quantization"] == "fp8"  # the nearest online one: warned
    assert knobs_of(vllm.gaps) == knobs_of(sglang.gaps) == ["quantization"]
    for engine in ("trtllm", "transformers"):
        assert knobs_of(launch_command(engine, MODEL, config, HOST, PORT).gaps) == ["quantization"]
    assert "--quantization" not in launch_command("transformers", MODEL, config, HOST, PORT).argv  # bnb only there


def test_kv_blocks_become_tokens_only_with_a_block_size():
    config = {"kv_cache_blocks": 100}
    assert launch_options("vllm", launch_command("vllm", MODEL, config, HOST, PORT).argv) == {
        "num-gpu-blocks-override": "100"}
    assert launch_options("transformers", launch_command("transformers", MODEL, config, HOST, PORT).argv) == {
        "continuous-batching": True, "cb-num-blocks": "100"}
    for engine in ("sglang", "tgi", "trtllm"):
        line = launch_command(engine, MODEL, config, HOST, PORT)
        assert knobs_of(line.gaps) == ["kv_cache_blocks"] and "block_size" in line.gaps[0]
    for engine in ENGINES:  # 0: the engine sizes its cache itself, nothing written, nothing warned
        line, default = (launch_command(engine, MODEL, config, HOST, PORT) for config in ({"kv_cache_blocks": 0}, {}))
        assert (line.argv, line.config_file, line.gaps) == (default.argv, default.config_file, [])


def test_absent_knobs_keep_the_engines_defaults():
    for engine in ("vllm", "sglang", "tgi", "transformers"):
        line = launch_command(engine, MODEL, {}, HOST, PORT)
        expected = {"continuous-batching": True} if engine == "transformers" else {}
        assert launch_options(engine, line.argv) == expected and not line.gaps and not line.env
    trtllm = launch_command("trtllm", MODEL, {}, HOST, PORT)
    assert yaml.safe_load(trtllm.config_file[1]) == {"kv_cache_config": {"free_gpu_memory_fraction": 0.9}}


def test_unknown_engine_and_bad_values_raise():
    with pytest.raises(ValueError, match="unknown serving engine 'triton'"):
        launch_command("triton", MODEL, FULL, HOST, PORT)
    with pytest.raises(ValueError, match="unknown serving engine"):
        engine_options("hf", FULL)
    for bad in ({"scheduler": "lifo"}, {"kv_cache_blocks": -1}, {"max_num_seqs": 0}, {"prefix_caching": "yes"},
                {"dtype": "float8"}, {"block_size": 16.0}):
        for engine in ENGINES:
            with pytest.raises(ValueError):
                launch_command(engine, MODEL, bad, HOST, PORT)
        with pytest.raises(ValueError):
            transformers_cb_fields(bad)


def test_knobs_outside_the_mapping_are_gaps_never_dropped():
    for engine in ENGINES:
        line = launch_command(engine, MODEL, {"speculative_tokens": 4, "cache_implementation": "static"}, HOST, PORT)
        assert knobs_of(line.gaps) == ["speculative_tokens", "cache_implementation"]
    assert SERVING_KNOBS == ("max_batch_tokens", "max_num_seqs", "kv_cache_blocks", "block_size", "prefix_caching",
                             "scheduler", "async_batching", "compile", "dtype", "quantization", "shard_count")


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformers_cb_fields_build_a_real_config(name):
    from transformers import ContinuousBatchingConfig
    from transformers.generation.continuous_batching.scheduler import SCHEDULER_MAPPING

    config = {key: value for key, value in CONFIGS[name].items() if key != "shard_count"}
    fields, gaps = transformers_cb_fields(config)
    built = ContinuousBatchingConfig(**fields)
    assert built.page_size == config["block_size"]
    assert built.num_blocks == (config["kv_cache_blocks"] or None)  # 0: left to the engine
    assert built.max_batch_tokens == config["max_batch_tokens"]
    assert built.max_requests_per_batch == config["max_num_seqs"]
    assert built.allow_block_sharing is config["prefix_caching"]
    assert built.use_async_batching is config["async_batching"]
    assert built.scheduler_type == config["scheduler"] and built.scheduler_type in SCHEDULER_MAPPING
    assert built.default_compile_level == (1 if config["compile"] else 0)
    assert built.use_cuda_graph == (None if config["compile"] else False)
    assert gaps == []
    _, sharded = transformers_cb_fields({**config, "shard_count": 2, "quantization": "int8-weight-only"})
    assert knobs_of(sharded) == ["quantization", "shard_count"]
    defaults = ContinuousBatchingConfig()  # a value equal to the engine's default is no gap for the plain CLI
    assert {name: getattr(defaults, name) for name in CB_DEFAULTS} == CB_DEFAULTS


@pytest.mark.parametrize("name", list(CONFIGS))
def test_transformers_serve_argv_parses_with_the_real_cli(name):
    """The command uses only flags ``transformers serve`` has; the engine it builds gets the knobs' values."""
    from transformers import ContinuousBatchingConfig
    from transformers.cli.transformers import app

    config = CONFIGS[name]
    argv = transformers_serve_argv(MODEL, config, HOST, PORT)
    assert argv[:2] == ["transformers", "serve"]
    params = app.commands["serve"].make_context("serve", argv[2:]).params
    assert params["force_model"] == MODEL and params["continuous_batching"] is True
    assert params["host"] == HOST and params["port"] == PORT and params["dtype"] == config["dtype"]
    assert params["compile"] is config["compile"]
    assert params["cb_block_size"] == config["block_size"]
    assert params["cb_max_batch_tokens"] == config["max_batch_tokens"]
    assert params["cb_num_blocks"] == (config["kv_cache_blocks"] or None)
    assert params["cb_use_cuda_graph"] == (None if config["compile"] else False)
    built = ContinuousBatchingConfig(block_size=params["cb_block_size"], max_batch_tokens=params["cb_max_batch_tokens"])
    assert built.page_size == config["block_size"]  # the CLI's --cb-block-size is the deprecated name of page_size


def exported(tmp_path: Path, config: dict, load: dict | None = LOAD, metrics: dict | None = None) -> tuple[Path, list]:
    context = ExportContext(task="smollm2-serving", model=MODEL, metrics=METRICS if metrics is None else metrics,
                            run="serve-20261130", trial=3, load=load, slo=SLO if load else None)
    paths, warnings = export_to(list(TARGETS), config, context, tmp_path)
    assert sorted(path.name for path in paths) == ["hf.json", "hf_serve.py", "sglang.yaml", "tgi.sh", "trtllm.yaml",
                                                   "vllm.yaml"]
    return tmp_path, warnings


@pytest.mark.parametrize("name", list(CONFIGS))
def test_launch_and_export_agree(tmp_path, name):
    config = CONFIGS[name]
    out, warnings = exported(tmp_path, config)
    lines = {engine: launch_command(engine, MODEL, config, HOST, PORT) for engine in ENGINES}
    vllm = yaml.safe_load((out / "vllm.yaml").read_text())
    assert vllm.pop("model") == MODEL
    assert {key: True if value is True else str(value) for key, value in vllm.items()} == launch_options(
        "vllm", lines["vllm"].argv)
    sglang = yaml.safe_load((out / "sglang.yaml").read_text())
    assert sglang.pop("model-path") == MODEL
    assert {key: True if value is True else str(value) for key, value in sglang.items()} == launch_options(
        "sglang", lines["sglang"].argv)
    tgi = dict(line.removeprefix("export ").split("=", 1) for line in (out / "tgi.sh").read_text().splitlines()
               if line.startswith("export "))
    assert {key: shlex.split(value)[0] for key, value in tgi.items()} == {
        "MODEL_ID": MODEL, **lines["tgi"].env,
        **{key.upper().replace("-", "_"): value for key, value in launch_options("tgi", lines["tgi"].argv).items()}}
    assert yaml.safe_load((out / "trtllm.yaml").read_text()) == yaml.safe_load(lines["trtllm"].config_file[1])
    snippet: dict[str, Any] = {}
    exec(compile((out / "hf_serve.py").read_text(), "hf_serve.py", "exec"), snippet)  # a valid, runnable module
    assert snippet["SERVE_ARGV"] == transformers_serve_argv(MODEL, config, hf.HOST, hf.PORT)
    assert launch_options("transformers", lines["transformers"].argv) == options_of(
        [arg for arg in snippet["SERVE_ARGV"][3:] if arg not in (hf.HOST, str(hf.PORT), "--host", "--port")])
    assert snippet["CB_FIELDS"] == transformers_cb_fields(config)[0]
    assert snippet["continuous_batching_config"]().page_size == config["block_size"]
    assert snippet["INFERTUNE_CONFIG"] == config
    for target, engine in ENGINE_OF.items():  # every gap: warned, and written in the stack's file
        gaps = lines[engine].gaps
        assert [w.removeprefix(f"{target}: ") for w in warnings if w.startswith(f"{target}: ")] == gaps
        name_of = {"hf": "hf_serve.py", "tgi": "tgi.sh"}.get(target, f"{target}.yaml")
        text = (out / name_of).read_text()
        assert all(f"# WARNING {gap}" in text for gap in gaps)


def test_serving_header_states_load_slos_and_no_static_batch(tmp_path):
    out, _ = exported(tmp_path, FULL)
    for name in ("vllm.yaml", "sglang.yaml", "tgi.sh", "trtllm.yaml", "hf_serve.py"):
        text = (out / name).read_text()
        assert "# measured under load: goodput_rps 1.75, requests_per_s 2.00, ttft_p95_s 0.412, itl_p95_s n/a" in text
        assert "# load measured at: process poisson, rate 2.0, num_requests 32" in text
        assert "SLOs: ttft_p95_s <= 2.0, itl_p95_s <= 0.2" in text
        assert SERVING_NOTE in text and STATIC_BATCH_NOTE not in text and "static batch (" not in text
        assert "tokens_per_s 88.1" in text and "task: smollm2-serving" in text


def test_a_serving_measurement_of_static_knobs_keeps_engine_defaults(tmp_path):
    """A recorded load makes it a serving config even without batching knobs: no static batch of 1 is invented."""
    out, _ = exported(tmp_path, {"dtype": "bfloat16"})
    assert yaml.safe_load((out / "vllm.yaml").read_text()) == {"model": MODEL, "dtype": "bfloat16"}
    assert SERVING_NOTE in (out / "vllm.yaml").read_text()
    static = tmp_path / "static"
    context = ExportContext(task="t", model=MODEL, metrics={})
    export_to(["vllm"], {"dtype": "bfloat16"}, context, static)
    text = (static / "vllm.yaml").read_text()
    assert yaml.safe_load(text)["max-num-seqs"] == 1 and STATIC_BATCH_NOTE in text  # what a static run measured
    assert "measured under load" not in text and "SLOs" not in text
