"""Fuzz the files a user hands infertune (seeded, bounded hypothesis mutations) through its commands: never a
traceback, exit codes 0, 1 or 2 only, nothing written outside the runs folder, no record of an intact run lost."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.helpers import REPLAY, ROOT
from tuner import cli
from tuner.evaluation.evaluator import Evaluator
from tuner.measure.cache import MeasurementCache
from tuner.task import load_task

SPACE = ROOT / "search_spaces" / "smollm2-cpu-reduced.yaml"
RECORDING = ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl"
EXAMPLES = 12  # per file kind: 7 kinds, ~0.3-2 s an example on a 2-core runner (in-process, replayed, no MLflow)
# no shrinking: a failure is reported as generated (shrinking one took over 5 minutes here)
FUZZ = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

JUNK = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(), st.text(max_size=12),
                 st.lists(st.one_of(st.integers(-3, 70), st.text(max_size=4)), max_size=3),
                 st.dictionaries(st.text(max_size=6), st.integers(-3, 9), max_size=2))


class Workspace:
    """Inputs, a runs folder and an intact run whose records no fuzzed command may lose."""

    def __init__(self, root: Path):
        self.root = root
        self.inputs = root / "inputs"
        self.runs = root / "runs"
        self.inputs.mkdir()
        self.count = 0
        task = yaml.safe_load(REPLAY.read_text())
        self.task = {**task, "search_space": str(SPACE), "recording": str(RECORDING), "budget": 3}
        code, _ = self.run(["tune", self.write("intact.yaml", yaml.safe_dump(self.task)), "--agent", "random",
                            "--run", "intact", "--no-mlflow"])
        assert code == 0
        self.intact = (self.runs / "intact" / "records.jsonl").read_bytes()

    def write(self, name: str, data: str | bytes) -> str:
        path = self.inputs / name
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
        return str(path)

    def name(self) -> str:
        self.count += 1
        return f"fuzz-{self.count}"

    def copy_of_intact(self) -> tuple[str, Path, str]:
        """A new copy of the intact run: its name, its folder, and the task file it was run on."""
        name = self.name()
        shutil.copytree(self.runs / "intact", self.runs / name, ignore=shutil.ignore_patterns("run.lock"))
        return name, self.runs / name, self.write("task.yaml", yaml.safe_dump(self.task))

    def run(self, argv: list[str]) -> tuple[int, str]:
        """``infertune --runs-dir RUNS ARGV`` in this process: (exit code, stderr); any exception fails the test."""
        import contextlib
        import io

        err = io.StringIO()
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            try:
                code = cli.main(["--runs-dir", str(self.runs), *argv])
            except SystemExit as stop:  # argparse
                code = stop.code if isinstance(stop.code, int) else 2
        return code, err.getvalue()

    def check(self, code: int, stderr: str, argv: list[str]) -> None:
        assert code in (0, 1, 2), (argv, code, stderr[-2000:])
        assert "Traceback" not in stderr, (argv, stderr[-3000:])
        outside = [path for path in self.root.iterdir() if path not in (self.inputs, self.runs)]
        assert not outside, outside
        assert (self.runs / "intact" / "records.jsonl").read_bytes().startswith(self.intact)


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    return Workspace(tmp_path_factory.mktemp("fuzz"))


def _mutated_mapping(data: st.DataObject, mapping: dict[str, Any]) -> dict[str, Any]:
    """``mapping`` with one to three fields (top level or one below) replaced by junk, deleted or added."""
    mutated = json.loads(json.dumps(mapping))
    for _ in range(data.draw(st.integers(1, 3))):
        target = mutated
        keys = list(target)
        key = data.draw(st.sampled_from([*keys, "surprise"]))
        if isinstance(target.get(key), dict) and target[key] and data.draw(st.booleans()):
            target, key = target[key], data.draw(st.sampled_from(list(target[key])))
        if data.draw(st.booleans()) and key in target:
            del target[key]
        else:
            target[key] = data.draw(JUNK)
    return mutated


def _mutated_text(data: st.DataObject, text: str) -> bytes:
    """``text`` cut short, or with random bytes written into it."""
    raw = text.encode()
    at = data.draw(st.integers(0, len(raw)))
    if data.draw(st.booleans()):
        return raw[:at]
    return raw[:at] + data.draw(st.binary(min_size=1, max_size=8)) + raw[at:]


def _dump(value: Any) -> str:
    return yaml.safe_dump(value, allow_unicode=True) if isinstance(value, dict) else json.dumps(value)


def _file(data: st.DataObject, document: dict[str, Any], as_yaml: bool = True) -> bytes:
    """A mutated copy of ``document``: its fields, or its bytes."""
    text = yaml.safe_dump(document) if as_yaml else json.dumps(document)
    if data.draw(st.booleans()):
        mutated = _mutated_mapping(data, document)
        return (yaml.safe_dump(mutated) if as_yaml else json.dumps(mutated)).encode()
    return _mutated_text(data, text)


def _commands(data: st.DataObject, workspace: Workspace, task_file: str) -> list[list[str]]:
    agent = data.draw(st.sampled_from(["random", "optuna", "ppo"]))
    return [["tune", task_file, "--agent", agent, "--budget", "3", "--run", workspace.name(), "--no-mlflow"],
            ["measure", task_file, "--set", "batch_size=1", "--run", workspace.name(), "--no-mlflow"],
            ["compare", task_file, "--agents", "random", "--budget", "2", "--seeds", "1", "--no-mlflow"],
            ["export", "--best", task_file, "--to", "all"]]


def _each(workspace: Workspace, commands: list[list[str]]) -> None:
    for argv in commands:
        code, stderr = workspace.run(argv)
        workspace.check(code, stderr, argv)


@FUZZ
@given(data=st.data())
def test_fuzzed_task_files(workspace, data):
    task_file = workspace.write("task.yaml", _file(data, workspace.task))
    _each(workspace, _commands(data, workspace, task_file))


@FUZZ
@given(data=st.data())
def test_fuzzed_search_spaces(workspace, data):
    space = workspace.write("space.yaml", _file(data, yaml.safe_load(SPACE.read_text())))
    task_file = workspace.write("task.yaml", yaml.safe_dump({**workspace.task, "search_space": space}))
    _each(workspace, _commands(data, workspace, task_file)[:2])


@FUZZ
@given(data=st.data())
def test_fuzzed_recordings(workspace, data):
    lines = RECORDING.read_bytes().splitlines()
    for index in data.draw(st.sets(st.integers(0, len(lines) - 1), min_size=1, max_size=4)):
        lines[index] = _file(data, json.loads(lines[index]), as_yaml=False)  # bytes: not always UTF-8
    recording = workspace.write("recording.jsonl", b"\n".join(lines) + b"\n")
    task_file = workspace.write("task.yaml", yaml.safe_dump({**workspace.task, "recording": recording}))
    _each(workspace, _commands(data, workspace, task_file)[:3])


@FUZZ
@given(data=st.data())
def test_fuzzed_run_json_then_resume(workspace, data):
    name, folder, task_file = workspace.copy_of_intact()
    settings_file = folder / "run.json"
    settings_file.write_bytes(_file(data, json.loads(settings_file.read_text()), as_yaml=False))
    _each(workspace, [["tune", task_file, "--resume", name, "--budget", "4", "--no-mlflow"], ["show", name],
                      ["report", name]])


@FUZZ
@given(data=st.data())
def test_fuzzed_records_then_show_resume_export(workspace, data):
    name, folder, task_file = workspace.copy_of_intact()
    records = folder / "records.jsonl"
    lines = records.read_text().splitlines()
    index = data.draw(st.integers(0, len(lines) - 1))
    lines[index] = _file(data, json.loads(lines[index]), as_yaml=False).decode("utf-8", "replace")
    records.write_text("\n".join(lines) + "\n")
    _each(workspace, [["show", name], ["tune", task_file, "--resume", name, "--budget", "4", "--no-mlflow"],
                      ["export", name, "--to", "vllm"]])


@FUZZ
@given(data=st.data())
def test_fuzzed_hf_json(workspace, data):
    exported = workspace.runs / "intact" / "export"
    if not (exported / "hf.json").is_file():
        workspace.run(["export", "intact", "--to", "hf", "--out", str(exported)])
    config = workspace.write("hf.json", _file(data, json.loads((exported / "hf.json").read_text()), as_yaml=False))
    task_file = workspace.write("task.yaml", yaml.safe_dump(workspace.task))
    _each(workspace, [["measure", task_file, "--config", config, "--run", workspace.name(), "--no-mlflow"]])


@FUZZ
@given(data=st.data())
def test_fuzzed_cache_entries_are_records_or_misses(workspace, data, tmp_path_factory):
    record = json.loads(workspace.intact.decode().splitlines()[0])
    folder = tmp_path_factory.mktemp("cache")
    (folder / "k.json").write_bytes(_file(data, record, as_yaml=False))
    stored = MeasurementCache(folder).get("k")
    if stored is not None:  # served: the evaluator rebuilds and scores it as it does a hit
        with Evaluator(load_task(workspace.write("task.yaml", yaml.safe_dump(workspace.task))),
                       folder / "run") as evaluator:
            served = evaluator._from_cache(stored, "2026-11-30T00:00:00Z")
        assert served.cached and served.config == stored["config"]
