"""Export to serving stacks: golden files, the DESIGN §10 flags, gaps warned, the hf round trip."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, TINY
from tuner.export import TARGETS, ExportContext, export_to

GOLDEN = Path(__file__).parent / "golden"
CONFIG = {"batch_size": 16, "dtype": "bfloat16", "quantization": "none", "attn_implementation": "sdpa",
          "cache_implementation": "static", "compile": True, "shard_count": 2}
CONTEXT = ExportContext(task="smollm2-cpu", model="/models/SmolLM2-135M-Instruct",
                        metrics={"tokens_per_s": 244.4, "latency_p95_s": 1.052, "top1_agree": 0.977, "kl": 0.00117},
                        run="tune-optuna-smollm2-cpu-20261126", trial=7, mlflow_run_id="0123abcd")


@pytest.mark.parametrize("target", list(TARGETS))
def test_golden_files(tmp_path, target):
    paths, _ = export_to([target], CONFIG, CONTEXT, tmp_path)
    for path in paths:
        golden = GOLDEN / path.name
        if os.environ.get("INFERTUNE_UPDATE_GOLDEN") == "1":
            golden.write_text(path.read_text())
        assert path.read_text() == golden.read_text(), f"{path.name} differs from tests/golden/{path.name}"


def _yaml(path: Path) -> dict:
    return yaml.safe_load(path.read_text())


def test_design_flags_per_stack(tmp_path):
    export_to(list(TARGETS), CONFIG, CONTEXT, tmp_path)
    vllm = _yaml(tmp_path / "vllm.yaml")
    assert vllm["tensor-parallel-size"] == 2 and vllm["dtype"] == "bfloat16" and vllm["max-num-seqs"] == 16
    assert "enforce-eager" not in vllm  # compile measured on: let vLLM compile and capture graphs
    sglang = _yaml(tmp_path / "sglang.yaml")
    assert sglang["tp-size"] == 2 and sglang["dtype"] == "bfloat16" and sglang["max-running-requests"] == 16
    assert sglang["enable-torch-compile"] is True
    tgi = dict(line.removeprefix("export ").split("=", 1) for line in (tmp_path / "tgi.sh").read_text().splitlines()
               if line.startswith("export "))
    assert tgi["NUM_SHARD"] == "2" and tgi["DTYPE"] == "bfloat16" and tgi["MAX_BATCH_SIZE"] == "16"
    assert "--num-shard 2" in (tmp_path / "tgi.sh").read_text()
    trtllm = _yaml(tmp_path / "trtllm.yaml")
    assert trtllm == {"tensor_parallel_size": 2, "dtype": "bfloat16", "max_batch_size": 16,
                      "kv_cache_config": {"free_gpu_memory_fraction": 0.9}}
    assert "# run: trtllm-serve /models/SmolLM2-135M-Instruct --config trtllm.yaml" in (
        tmp_path / "trtllm.yaml").read_text()
    assert ("# same as: vllm serve /models/SmolLM2-135M-Instruct --tensor-parallel-size 2 --dtype bfloat16 "
            "--max-num-seqs 16") in (tmp_path / "vllm.yaml").read_text()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["hf.json", "sglang.yaml", "tgi.sh", "trtllm.yaml",
                                                                "vllm.yaml"]  # one file per stack
    for name in ("vllm.yaml", "sglang.yaml", "tgi.sh", "trtllm.yaml"):
        text = (tmp_path / name).read_text()
        assert "task: smollm2-cpu" in text and "MLflow run: 0123abcd" in text and "tokens_per_s 244.4" in text
        assert "static batch" in text  # the batching gap is stated


def test_gaps_are_written_and_warned(tmp_path):
    config = {**CONFIG, "dtype": "float32", "quantization": "int8-dynamic", "compile": False}
    _, warnings = export_to(list(TARGETS), config, CONTEXT, tmp_path)
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
    measured = infertune("measure", str(TINY), "--set", "batch_size=4", "--set", "dtype=bfloat16", "--set",
                         "attn_implementation=eager", "--json", "--run", "m", runs=runs)
    assert measured.returncode == 0, measured.stderr
    original = json.loads(measured.stdout)
    out = tmp_path / "out"
    exported = infertune("export", "--best", str(TINY), "--to", "all", "--out", str(out), runs=runs)
    assert exported.returncode == 0, exported.stderr
    assert sorted(path.name for path in out.iterdir()) == ["hf.json", "sglang.yaml", "tgi.sh", "trtllm.yaml",
                                                           "vllm.yaml"]
    assert "infertune: warning: vllm: attn_implementation=eager" in exported.stderr
    again = infertune("measure", str(TINY), "--config", str(out / "hf.json"), "--json", "--no-cache", runs=runs)
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
    from tuner.tuning import attention_heads

    assert attention_heads(tiny_task, tmp_path) == 4
    assert attention_heads(replay_task, tmp_path) is None  # a recording names no checkpoint
