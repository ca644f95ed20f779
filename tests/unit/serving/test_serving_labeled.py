"""Task accuracy over HTTP: a real server's greedy answers to the labeled set score what in-process generate scores."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.helpers import LABELED_EVERY, ROOT

pytestmark = pytest.mark.usefixtures("kv_cache_sized_from_free_memory")  # one such server on the machine


def serving_task_with_labels(folder: Path) -> Path:
    """envs/smollm2-cpu-serving.yaml with a short load and every third item of smollm2-cpu's labeled set."""
    task = yaml.safe_load((ROOT / "envs" / "smollm2-cpu-serving.yaml").read_text())
    task["id"] = "smollm2-serving-labeled"
    task["workload"].update(rate=4.0, num_requests=4, new_tokens=8, repeats=2, warmup_requests=1)
    static = yaml.safe_load((ROOT / "envs" / "smollm2-cpu.yaml").read_text())["accuracy"]["labeled"]
    lines = (ROOT / "envs" / static["file"]).read_text().splitlines()
    task["accuracy"] = {"eval_prompts": 1, "new_tokens": 4,
                        "labeled": {"items": [json.loads(line) for line in lines[::LABELED_EVERY]],
                                    "new_tokens": static["new_tokens"]}}
    task["objective"]["constraints"] = {"task_accuracy": {"min_ratio": 0.99}}
    path = folder / "serving-labeled.yaml"
    path.write_text(yaml.safe_dump(task))
    return path


def test_the_labeled_set_over_http_scores_the_float32_weights_like_generate(tmp_path: Path):
    task = serving_task_with_labels(tmp_path)
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs"), "measure", str(task),
               "--json", "--no-mlflow"]  # the engine's defaults: float32, the reference's weights
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    (record,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert record["config"]["dtype"] == "float32" and record["status"] in ("ok", "unstable")
    # test_smollm2: in-process generate on the same 16 items gets 7 right with the float32 weights
    assert record["metrics"]["task_accuracy"] == pytest.approx(7 / 16)
    assert record["info"]["reference_metrics"] == {"task_accuracy": pytest.approx(7 / 16)}
    # the config is the reference's: one server, its labeled set answered once (a phase is entered at 0 s, then
    # its line repeats every 10 s while it lasts)
    assert result.stderr.count("scoring task accuracy (16 labeled questions) (0s in this phase") == 1
