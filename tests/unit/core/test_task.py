"""Task specs: the shipped ones load; bad fields give one-line errors naming file, field, value."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tests.helpers import ROOT
from tuner.task import load_task
from tuner.util.errors import ConfigError, ModelNotFoundError


def test_shipped_tasks_load():
    smol = load_task(ROOT / "envs" / "smollm2-cpu.yaml")
    assert smol.id == "smollm2-cpu" and smol.device == "auto"
    assert len(smol.workload.prompts) >= 32
    assert Path(smol.model["gguf"]).is_file()
    assert smol.model_identity["gguf"].startswith("SmolLM2-135M-Instruct.Q4_1.gguf:")
    assert smol.accuracy.reference == {"dtype": "float32", "quantization": "none", "attn_implementation": "eager",
                                       "shard_count": 1}
    tiny = load_task(ROOT / "envs" / "tiny-cpu.yaml")
    assert tiny.space.label == "hf-transformers@1" and "tiny" in tiny.model


def _write(tmp_path: Path, **changes) -> Path:
    data = yaml.safe_load((ROOT / "envs" / "tiny-cpu.yaml").read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    (tmp_path / "search_spaces").mkdir(exist_ok=True)
    (tmp_path / "search_spaces" / "hf-transformers.yaml").write_text(
        (ROOT / "search_spaces" / "hf-transformers.yaml").read_text())
    path = tmp_path / "envs" / "task.yaml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize(("changes", "fragment"), [
    ({"device": "tpu"}, "device: must be one of auto, cpu, cuda (got 'tpu')"),
    ({"budget": 0}, "budget: must be an integer >= 1 (got 0)"),
    ({"turbo": 1}, "turbo: unknown key"),
    ({"search_space": "nope"}, "search_space: search space not found (got 'nope')"),
    ({"objective": {"maximize": "speed"}}, "objective.maximize: unknown metric"),
    ({"workload": {"prompts": [], "new_tokens": 4}}, "workload.prompts: must be a non-empty list of strings"),
    ({"accuracy": {"reference": {"dtype": "float64"}}}, "dtype: value not allowed"),
    ({"workload": {"prompts": ["a"], "chat_template": "false"}},
     "workload.chat_template: must be true or false (a YAML boolean, unquoted) (got 'false')"),
    ({"objective": 5}, "objective: must be a mapping (got 5)"),
    ({"accuracy": {"labeled": {"items": [{"prompt": "2+2?", "answer": "4", "choices": ["3", "5"]}]}}},
     "accuracy.labeled[0].choices: must be a list of strings that holds the answer"),
    ({"accuracy": {"labeled": {"file": "nope.jsonl"}}}, "accuracy.labeled.file: labeled set not found"),
])
def test_bad_task_fields(tmp_path, changes, fragment):
    path = _write(tmp_path, **changes)
    with pytest.raises(ConfigError) as caught:
        load_task(path)
    assert fragment in str(caught.value)
    assert str(path) in str(caught.value)


def test_missing_model_file(tmp_path):
    path = _write(tmp_path, model={"gguf": "weights/missing.gguf"})
    with pytest.raises(ModelNotFoundError, match=r"model.gguf: GGUF file not found \(got 'weights/missing.gguf'\)"):
        load_task(path)


def test_missing_model_folder(tmp_path):
    path = _write(tmp_path, model={"path": "nowhere"})
    with pytest.raises(ModelNotFoundError, match="model.path: no model folder with config.json there"):
        load_task(path)


def test_hf_task_rejects_a_knob_the_backend_would_ignore(tmp_path):
    space = tmp_path / "space.yaml"
    space.write_text("id: s\nknobs:\n  kv_dtype: {type: categorical, choices: [auto, fp8]}\n")
    path = _write(tmp_path, search_space=str(space))
    with pytest.raises(ConfigError, match=r"knobs.kv_dtype: the hf backend has no such knob"):
        load_task(path)


def test_the_default_task_ships_a_labeled_set():
    labeled = load_task(ROOT / "envs" / "smollm2-cpu.yaml").accuracy.labeled
    assert labeled is not None and len(labeled.items) >= 40
    kinds = {item["prompt"].split()[0] for item in labeled.items}
    assert len(kinds) >= 3  # sentiment, intent and factual questions, not one template
    assert all(item["answer"] in item["choices"] for item in labeled.items)
