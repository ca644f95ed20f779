"""Export to serving stacks: golden files, the design §10 flags, gaps warned, the hf round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT, TINY
from tuner.export import TARGETS, ExportContext, export_to

GOLDEN = Path(__file__).parent / "golden"
CONFIG = {"batch_size": 16, "dtype": "bfloat16", "quantization": "none", "attn_implementation": "sdpa",
          "cache_implementation": "static", "compile": True, "shard_count": 2}
EAGER_INT8 = {**CONFIG, "batch_size": 8, "dtype": "float16", "quantization": "int8-weight-only",
              "cache_implementation": "dynamic", "compile": False, "shard_count": 1}
METRICS = {"ttft_s": 0.031, "tpot_s": 0.0042, "latency_p50_s": 1.01, "latency_p95_s": 1.052, "tokens_per_s": 244.4,
           "peak_mem_mb": 16544.0, "warmup_s": 41.2, "top1_agree": 0.977, "kl": 0.00117, "task_accuracy": None,
           "repeats": 3, "cv": 0.012}
# Real checkpoints' shapes (their config.json): the serving stacks split attention heads by tensor parallelism
LLAMA3_8B = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
             "intermediate_size": 14336, "num_hidden_layers": 32, "num_attention_heads": 32, "num_key_value_heads": 8,
             "vocab_size": 128256, "max_position_embeddings": 8192}
SMOLLM2_135M = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 576,
                "intermediate_size": 1536, "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
                "vocab_size": 49152, "max_position_embeddings": 8192}
SHOWN_AS = "/models"  # where the golden files say the checkpoint lives (the test's folder is a temporary one)


def cli_context(tmp_path: Path, name: str, shape: dict, config: dict) -> tuple[ExportContext, Path]:
    """The context ``infertune export`` builds (tuning.export_context): a task on a local checkpoint folder."""
    from tuner.records import Record
    from tuner.run.tune import export_context
    from tuner.task import load_task

    folder = tmp_path / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(shape))
    task_file = tmp_path / "task.yaml"
    task_file.write_text(f"id: {name.lower()}-gpu\nmodel: {{path: {name}}}\nworkload: {{prompts: [hi]}}\n")
    record = Record(run="tune-optuna-20261126", task=f"{name.lower()}-gpu", space="hf-transformers@1", trial=7,
                    agent="optuna", config=config, status="ok", error=None, metrics=METRICS, objective=2.5,
                    feasible=True, cached=False, fingerprint={}, started_at="2026-11-26T12:00:00Z", duration_s=60.0)
    return export_context(load_task(task_file), record, tmp_path / "runs", "0123abcd"), folder


@pytest.mark.parametrize("target", list(TARGETS))
@pytest.mark.parametrize(("golden_dir", "config"), [(GOLDEN, CONFIG), (GOLDEN / "eager-int8", EAGER_INT8)])
def test_golden_files(tmp_path, target, golden_dir, config):
    context, folder = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, config)
    assert context.attention_heads == 32  # what the CLI path read from config.json
    paths, _ = export_to([target], config, context, tmp_path / "out")
    for path in paths:
        text = path.read_text().replace(str(folder), f"{SHOWN_AS}/{folder.name}")
        golden = golden_dir / path.name
        if os.environ.get("INFERTUNE_UPDATE_GOLDEN") == "1":
            golden.parent.mkdir(exist_ok=True)
            golden.write_text(text)
        assert text == golden.read_text(), f"{path.name} differs from {golden}"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_design_flags_per_stack(tmp_path):
    context, folder = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, CONFIG)
    _, warnings = export_to(list(TARGETS), CONFIG, context, tmp_path / "out")
    out = tmp_path / "out"
    assert not [warning for warning in warnings if "shard_count" in warning]  # 32 heads split over 2
    vllm = _yaml(out / "vllm.yaml")
    assert vllm["tensor-parallel-size"] == 2 and vllm["dtype"] == "bfloat16" and vllm["max-num-seqs"] == 16
    assert "enforce-eager" not in vllm  # compile measured on: let vLLM compile and capture graphs
    sglang = _yaml(out / "sglang.yaml")
    assert sglang["tp-size"] == 2 and sglang["dtype"] == "bfloat16" and sglang["max-running-requests"] == 16
    assert sglang["enable-torch-compile"] is True and "cuda-graph-backend-decode" not in sglang
    tgi = dict(line.removeprefix("export ").split("=", 1) for line in (out / "tgi.sh").read_text().splitlines()
               if line.startswith("export "))
    assert tgi["NUM_SHARD"] == "2" and tgi["DTYPE"] == "bfloat16" and tgi["MAX_BATCH_SIZE"] == "16"
    assert "CUDA_GRAPHS" not in tgi and "--num-shard 2" in (out / "tgi.sh").read_text()
    trtllm = _yaml(out / "trtllm.yaml")
    assert trtllm == {"tensor_parallel_size": 2, "dtype": "bfloat16", "max_batch_size": 16,
                      "kv_cache_config": {"free_gpu_memory_fraction": 0.9},
                      "torch_compile_config": {"enable_fullgraph": True}}  # the pytorch backend's compile switch
    assert "compiled ahead of time" not in (out / "trtllm.yaml").read_text()
    assert f"# run: trtllm-serve {folder} --config trtllm.yaml" in (out / "trtllm.yaml").read_text()
    assert (f"# same as: vllm serve {folder} --tensor-parallel-size 2 --dtype bfloat16 "
            "--max-num-seqs 16") in (out / "vllm.yaml").read_text()
    assert sorted(path.name for path in out.iterdir()) == ["hf.json", "sglang.yaml", "tgi.sh", "trtllm.yaml",
                                                           "vllm.yaml"]  # one file per stack
    for name in ("vllm.yaml", "sglang.yaml", "tgi.sh", "trtllm.yaml"):
        text = (out / name).read_text()
        assert "task: meta-llama-3-8b-instruct-gpu" in text and "MLflow run: 0123abcd" in text
        assert "tokens_per_s 244.4" in text and "peak_mem_mb 16544" in text
        assert "static batch" in text  # the batching gap is stated


def test_hf_export_uses_distributed_config(tmp_path):
    """transformers 5: ``from_pretrained(tp_plan=)`` is deprecated; the file holds a real DistributedConfig's fields."""
    from transformers.distributed import DistributedConfig

    context, _ = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, CONFIG)
    export_to(["hf"], CONFIG, context, tmp_path / "out")
    document = json.loads((tmp_path / "out" / "hf.json").read_text())
    kwargs = document["from_pretrained"]
    assert "tp_plan" not in kwargs
    assert document["distributed_config_class"] == "transformers.distributed.DistributedConfig"
    built = DistributedConfig(**kwargs["distributed_config"])
    assert built.tp_plan == "auto" and built.tp_size == 2
    export_to(["hf"], EAGER_INT8, context, tmp_path / "single")
    assert "distributed_config" not in json.loads((tmp_path / "single" / "hf.json").read_text())["from_pretrained"]


@pytest.mark.parametrize("quantization", ["int8-weight-only", "int4-weight-only"])
def test_sglang_weight_only_uses_a_setting_that_exists(tmp_path, quantization):
    """SGLang 0.5.23 has no --torchao-config: the nearest online setting is written, and warned about."""
    config = {**EAGER_INT8, "quantization": quantization}
    context, _ = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, config)
    _, warnings = export_to(["sglang"], config, context, tmp_path / "out")
    text = (tmp_path / "out" / "sglang.yaml").read_text()
    options = yaml.safe_load(text)
    assert "torchao-config" not in options and "torchao-config" not in text.split("# run:")[1]
    assert options["quantization"] == "fp8"
    assert [w for w in warnings if w.startswith(f"sglang: quantization={quantization}: SGLang has no torchao")]
    assert f"# WARNING quantization={quantization}: SGLang has no torchao" in text


def test_compile_off_turns_graphs_off_everywhere(tmp_path):
    """What infertune measured without compile had no CUDA graphs: every stack is told so, SGLang included."""
    context, _ = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, EAGER_INT8)
    export_to(list(TARGETS), EAGER_INT8, context, tmp_path / "out")
    out = tmp_path / "out"
    assert _yaml(out / "vllm.yaml")["enforce-eager"] is True
    sglang = _yaml(out / "sglang.yaml")
    assert sglang["cuda-graph-backend-decode"] == "disabled" and sglang["cuda-graph-backend-prefill"] == "disabled"
    assert "enable-torch-compile" not in sglang and "disable-cuda-graph" not in sglang  # deprecated switch
    assert "--cuda-graph-backend-decode disabled" in (out / "sglang.yaml").read_text()
    assert "export CUDA_GRAPHS=0" in (out / "tgi.sh").read_text()
    trtllm = _yaml(out / "trtllm.yaml")
    assert "cuda_graph_config" in trtllm and trtllm["cuda_graph_config"] is None  # null disables
    assert "torch_compile_config" not in trtllm
    assert json.loads((out / "hf.json").read_text())["generate"]["disable_compile"] is True


@pytest.mark.parametrize("shards", [2, 4])
def test_smollm2_heads_refuse_even_shards(tmp_path, shards):
    """SmolLM2-135M has 9 attention heads: the CLI path reads them and every stack warns that it will refuse."""
    config = {**CONFIG, "shard_count": shards}
    context, _ = cli_context(tmp_path, "SmolLM2-135M-Instruct", SMOLLM2_135M, config)
    assert context.attention_heads == 9
    _, warnings = export_to(list(TARGETS), config, context, tmp_path / "out")
    for target in TARGETS:
        assert [w for w in warnings if w.startswith(f"{target}: shard_count={shards}: ") and "9 attention heads" in w
                and "sizes" in w and w.endswith("accepts here: 1)")], target
    assert "9 attention heads" in (tmp_path / "out" / "vllm.yaml").read_text()


def test_gaps_are_written_and_warned(tmp_path):
    config = {**CONFIG, "dtype": "float32", "quantization": "int8-dynamic", "compile": False}
    context, _ = cli_context(tmp_path, "Meta-Llama-3-8B-Instruct", LLAMA3_8B, config)
    _, warnings = export_to(list(TARGETS), config, context, tmp_path)
    assert any(w.startswith("tgi: dtype=float32: no TGI equivalent") for w in warnings)
    assert any(w.startswith("vllm: quantization=int8-dynamic") for w in warnings)
    assert any(w.startswith("trtllm: quantization=int8-dynamic") for w in warnings)
    assert "# WARNING quantization=int8-dynamic" in (tmp_path / "vllm.yaml").read_text()
    assert _yaml(tmp_path / "vllm.yaml")["enforce-eager"] is True
    assert "export CUDA_GRAPHS=0" in (tmp_path / "tgi.sh").read_text()


def infertune(*args: str, runs: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), *args], capture_output=True,
                          text=True, cwd=ROOT, timeout=600)


def test_export_best_and_hf_round_trip(tmp_path):
    runs = tmp_path / "runs"
    for _attempt in range(3):  # a loaded runner can make the tiny model's timing unstable, never best
        measured = infertune("measure", str(TINY), "--set", "batch_size=4", "--set", "dtype=bfloat16", "--set",
                             "attn_implementation=eager", "--json", "--run", "m", runs=runs)
        assert measured.returncode == 0, measured.stderr
        original = json.loads(measured.stdout)
        if original["status"] == "ok":
            break
    out = tmp_path / "out"
    exported = infertune("export", "--best", str(TINY), "--to", "all", "--out", str(out), runs=runs)
    assert exported.returncode == 0, exported.stderr
    assert sorted(path.name for path in out.iterdir()) == ["hf.json", "sglang.yaml", "tgi.sh", "trtllm.yaml",
                                                           "vllm.yaml"]
    assert "infertune: warning: vllm: attn_implementation=eager" in exported.stderr
    again = infertune("measure", str(TINY), "--config", str(out / "hf.json"), "--json", "--no-cache", "--no-mlflow",
                      runs=runs)
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["config"] == original["config"]
    by_run = infertune("export", "m", "--to", "vllm", "--out", str(tmp_path / "by-run"), runs=runs)
    assert by_run.returncode == 0 and (tmp_path / "by-run" / "vllm.yaml").is_file()


@pytest.mark.parametrize(("args", "fragment"), [
    (["--best", str(TINY), "--to", "triton"], "--to: unknown export target"),
    (["nope", "--to", "all"], "RUN_ID: neither a run folder nor an MLflow run id"),
])
def test_export_user_errors(tmp_path, args, fragment):
    result = infertune("export", *args, runs=tmp_path)
    assert result.returncode == 2 and fragment in result.stderr and "Traceback" not in result.stderr


def test_attention_heads_known_for_local_models(tiny_task, replay_task, tmp_path):
    from tuner.run.tune import attention_heads

    assert attention_heads(tiny_task, tmp_path) == 4
    assert attention_heads(replay_task, tmp_path) is None  # a recording names no checkpoint
