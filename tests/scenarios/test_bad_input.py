"""Every user error in README's table: one line naming the file or flag, field and value; exit 2; no traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import REPLAY, ROOT, TINY
from tuner.run.lock import hold_run

SPACE = ROOT / "search_spaces" / "hf-transformers.yaml"


def _file(tmp: Path, name: str, text: str) -> str:
    (tmp / name).write_text(text.replace("SPACE", str(SPACE)))
    return str(tmp / name)


def _bytes(tmp: Path, name: str, data: bytes) -> str:
    (tmp / name).write_bytes(data.replace(b"SPACE", str(SPACE).encode()))
    return str(tmp / name)


def _serving(tmp: Path, name: str, fields: str, space: str = "serving-tiny") -> str:
    """A serving task file whose workload has ``fields`` beside its mode and prompt."""
    return _file(tmp, name, f"id: x\nmodel: {{tiny: {{}}}}\nsearch_space: {space}\n"
                            f"workload: {{mode: serving, prompts: [hi]{', ' + fields if fields else ''}}}\n")


def _run_json(tmp: Path, name: str, settings: dict) -> str:
    """A run folder under tmp/runs holding only ``run.json``; its name."""
    (tmp / "runs" / name).mkdir(parents=True)
    (tmp / "runs" / name / "run.json").write_text(json.dumps(settings))
    return name


def _busy(tmp: Path) -> str:
    """A run whose lock this (test) process holds, as a tune still running would."""
    name = _run_json(tmp, "busy", {"task": "smollm2-cpu-replay"})
    hold_run(tmp / "runs" / name, "--run")
    return name


NAME_RULE = ("must be a name of 1-100 letters, digits, '.', '_' or '-', not starting with '.' or '-' "
             "(a name, not a path)")

# (what is wrong, the arguments that show it, the one line the user gets, after "infertune: error: ")
CASES = [
    ("malformed YAML", lambda tmp: ["measure", _file(tmp, "bad.yaml", "id: x\nmodel: {tiny: {}\n")],
     "bad.yaml: line 3: malformed YAML: expected ',' or '}', but got '<stream end>'"),
    ("unknown key in a task file", lambda tmp: ["measure", _file(
        tmp, "unk.yaml", "id: x\nmodel: {tiny: {}}\nsearch_space: SPACE\nworkload: {prompts: [hi]}\nturbo: 1\n")],
     "unk.yaml: turbo: unknown key; known: accuracy, backend, budget"),
    ("value out of range in a task file", lambda tmp: ["measure", _file(
        tmp, "range.yaml", "id: x\nmodel: {tiny: {}}\nsearch_space: SPACE\nworkload: {prompts: [hi], "
        "new_tokens: -4}\n")], "range.yaml: workload.new_tokens: must be an integer >= 2 (got -4)"),
    ("unknown knob", lambda tmp: ["measure", str(TINY), "--set", "turbo=1"],
     "--set: turbo: unknown knob; known: batch_size, dtype"),
    ("knob value out of range", lambda tmp: ["measure", str(TINY), "--set", "batch_size=3"],
     "--set: batch_size: value not allowed; choices: 1, 2, 4, 8, 16, 32, 64 (got '3')"),
    ("missing model", lambda tmp: ["measure", _file(
        tmp, "nomodel.yaml", "id: x\nmodel: {gguf: missing.gguf}\nsearch_space: SPACE\nworkload: {prompts: [hi]}\n")],
     "nomodel.yaml: model.gguf: GGUF file not found (got 'missing.gguf')"),
    ("missing task file", lambda tmp: ["measure", str(tmp / "absent.yaml")], "absent.yaml: file not found"),
    ("unknown search space", lambda tmp: ["spaces", "show", "nope"],
     "search_space: search space not found (got 'nope')"),
    ("bad storage URL", lambda tmp: ["tune", str(REPLAY), "--storage", "foo://x", "--study", "s"],
     "--storage: cannot open the study: Can't load plugin: sqlalchemy.dialects:foo (got 'foo://x')"),
    ("shared study for an agent without one", lambda tmp: ["tune", str(REPLAY), "--agent", "coordinate", "--study",
                                                         "s"],
     "--study: a shared study is for --agent optuna or ppo (got 'coordinate')"),
    ("unknown agent", lambda tmp: ["tune", str(REPLAY), "--agent", "genetic"],
     "--agent: unknown agent; known: random, optuna, ppo, coordinate (got 'genetic')"),
    ("unknown sampler", lambda tmp: ["tune", str(REPLAY), "--sampler", "annealing"],
     "--sampler: unknown sampler; known: tpe, gp, nsga2, cmaes, random (got 'annealing')"),
    ("budget of 0", lambda tmp: ["tune", str(REPLAY), "--budget", "0"],
     "--budget: must be a positive number of measurements (got 0)"),
    ("negative budget", lambda tmp: ["compare", str(REPLAY), "--budget", "-3"],
     "--budget: must be a positive number of measurements (got -3)"),
    ("resume of an unknown run", lambda tmp: ["tune", str(REPLAY), "--resume", "nope"],
     "--resume: no run.json in"),
    ("unknown export target", lambda tmp: ["export", "--best", str(REPLAY), "--to", "lmdeploy"],
     "--to: unknown export target; known: vllm, sglang, tgi, trtllm, hf, all (got 'lmdeploy')"),
    ("show or report of an unknown run", lambda tmp: ["show", "nope"],
     "RUN: no run of that name under"),
    ("unknown arrival process in a serving workload",
     lambda tmp: ["measure", _serving(tmp, "arrival.yaml", "arrival: bursty")],
     "arrival.yaml: workload.arrival: must be one of poisson, constant, concurrent (got 'bursty')"),
    ("a rate for a concurrent load",
     lambda tmp: ["measure", _serving(tmp, "rate.yaml", "arrival: concurrent, rate: 2")],
     "rate.yaml: workload.rate: a concurrent load has streams, not a rate; give concurrency (got 2)"),
    ("an SLO that is not a positive number of seconds",
     lambda tmp: ["measure", _serving(tmp, "slo.yaml", "slo: {ttft_p95_s: -1}")],
     "slo.yaml: workload.slo.ttft_p95_s: must be a positive number of seconds (got -1)"),
    ("a static-batch knob in a serving task",
     lambda tmp: ["measure", _serving(tmp, "mixed.yaml", "", space="SPACE")],
     "hf-transformers.yaml: knobs.batch_size: the serving backend has no such knob; it knows max_batch_tokens"),
    ("UI links to a run MLflow lacks", lambda tmp: ["ui", "--run", "nope", "--links-only"],
     "--run: no infertune run of that name in the MLflow store"),
    ("a run name that is a path", lambda tmp: ["tune", str(REPLAY), "--run", "../x", "--no-mlflow"],
     f"--run: {NAME_RULE} (got '../x')"),
    ("a run name infertune keeps for its own files", lambda tmp: ["tune", str(REPLAY), "--run", "cache", "--no-mlflow"],
     "--run: infertune keeps this name in the runs folder for its own files (cache, export, mlartifacts, models, "
     "mlflow.db, optuna.db); choose another (got 'cache')"),
    ("a resumed run named by a path", lambda tmp: ["tune", str(REPLAY), "--resume", "../elsewhere/run"],
     f"--resume: {NAME_RULE} (got '../elsewhere/run')"),
    ("a task id that is a path", lambda tmp: ["measure", _file(
        tmp, "escape.yaml", "id: ../../outside/x\nmodel: {tiny: {}}\nsearch_space: SPACE\n"
        "workload: {prompts: [hi]}\n")],
     f"escape.yaml: id: {NAME_RULE} (got '../../outside/x')"),
    ("a run another process is using", lambda tmp: ["tune", str(REPLAY), "--resume", _busy(tmp), "--no-mlflow"],
     "--resume: the run is in use by process"),
    ("a task file that is not UTF-8", lambda tmp: ["measure", _bytes(
        tmp, "latin1.yaml", b"id: x\nmodel: {tiny: {}}\nsearch_space: SPACE\nworkload: {prompts: [caf\xe9]}\n")],
     "latin1.yaml: line 4: not UTF-8 text: byte 0xe9 cannot be decoded"),
    ("a key given twice in a YAML file", lambda tmp: ["measure", _file(
        tmp, "twice.yaml", "id: x\nmodel: {tiny: {}}\nsearch_space: SPACE\nworkload: {prompts: [hi]}\nid: y\n")],
     "twice.yaml: line 5: malformed YAML: key 'id' appears twice in one mapping"),
    ("a list as a YAML key", lambda tmp: ["measure", _file(tmp, "listkey.yaml", "? [a, b]\n: 1\n")],
     "listkey.yaml: line 1: malformed YAML: found unhashable key"),
    ("a damaged setting in run.json", lambda tmp: ["tune", str(REPLAY), "--resume", _run_json(
        tmp, "damaged", {"task": "smollm2-cpu-replay", "agent": "optuna", "storage": 5}), "--no-mlflow"],
     "run.json: storage: damaged run setting; start a new run (got 5)"),
    ("a negative seed", lambda tmp: ["tune", str(REPLAY), "--seed", "-1", "--no-mlflow"],
     "argument --seed: must be an integer from 0 to 4294967295 (got '-1')"),
    ("a policy file that does not exist", lambda tmp: ["tune", str(REPLAY), "--agent", "ppo", "--policy",
                                                       "nope.zip.zip", "--no-mlflow"],
     "--policy: no such file; give a .zip saved by infertune pretrain or a ppo run, or 'none' (got 'nope.zip.zip')"),
    ("a policy file that is not a saved policy", lambda tmp: ["tune", str(REPLAY), "--agent", "ppo", "--policy",
                                                              _file(tmp, "policy.zip", "not a zip"), "--no-mlflow"],
     "--policy: not a saved policy (a .zip from infertune pretrain or a ppo run)"),
    ("a pretrained policy on a space with knobs it never learned", lambda tmp: [
        "tune", str(ROOT / "envs" / "smollm2-cpu-serving-replay.yaml"), "--agent", "ppo", "--policy",
        str(ROOT / "policies" / "default.zip"), "--no-mlflow"],
     "--policy: pretrained on the knobs batch_size, dtype, quantization, attn_implementation, cache_implementation, "
     "compile, shard_count; this task's space also has max_num_seqs, max_batch_tokens, scheduler: use --policy none "
     "to learn on it"),
    ("no agent in --agents", lambda tmp: ["compare", str(REPLAY), "--agents", ",", "--no-mlflow"],
     "--agents: name at least one agent of random, optuna, ppo, coordinate (got ',')"),
    ("a runs folder that is a file", lambda tmp: ["--runs-dir", _file(tmp, "afile", ""), "tune", str(REPLAY)],
     "--runs-dir: is a file, not a folder"),
    ("a runs folder that cannot be created", lambda tmp: ["--runs-dir", _file(tmp, "plain", "") + "/runs", "tune",
                                                          str(REPLAY)],
     "--runs-dir: cannot write there (Not a directory)"),
    ("a config file of the wrong shape", lambda tmp: ["measure", str(TINY), "--config", _file(
        tmp, "hf.json", '{"kind": "infertune.hf-export", "infertune_config": 5}'), "--no-mlflow"],
     "hf.json: infertune_config: must be an object of knob: value (got 5)"),
    ("a knob value in a config file that is not a value", lambda tmp: ["measure", str(TINY), "--config", _file(
        tmp, "plain.json", '{"batch_size": [1]}'), "--no-mlflow"],
     "plain.json: batch_size: a knob's value is a string, number or true/false (got [1])"),
    ("resume of a run whose task files changed", lambda tmp: ["tune", str(REPLAY), "--resume", _run_json(
        tmp, "old", {"task": "smollm2-cpu-replay", "inputs": {"task file": "0" * 64}}), "--no-mlflow"],
     "--resume: the task's files changed since the run started ("),
]


@pytest.mark.parametrize(("what", "make_args", "message"), CASES, ids=[case[0] for case in CASES])
def test_user_error_is_one_line_exit_2(tmp_path, what, make_args, message):
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(tmp_path / "runs"), *make_args(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert lines[0].startswith(f"infertune: error: {message}") or message in lines[0], lines[0]


def test_readme_lists_every_user_error():
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Errors"):]
    for what, _, message in CASES:
        assert f"| {what} |" in table, what
        assert message.split(" (got")[0].replace("|", "\\|") in table, message


def test_yaml_anchors_and_merge_keys_still_load(tmp_path):
    from tuner.space.loader import read_yaml

    path = Path(_file(tmp_path, "merge.yaml", "base: &b {x: 1}\nother:\n  <<: *b\n  y: 2\n"))
    assert read_yaml(path) == {"base": {"x": 1}, "other": {"x": 1, "y": 2}}
