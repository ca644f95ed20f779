"""Every backend is one Measurer to the Evaluator: the HF worker client and the replay recording alike."""

from __future__ import annotations

import json

from tests.helpers import ROOT
from tuner.evaluation.evaluator import Evaluator
from tuner.measure.backends.replay import ReplayMeasurer, read_recording
from tuner.measure.launcher import WorkerClient
from tuner.measure.measurer import Measurer
from tuner.task import load_task


def test_both_backends_are_measurers(tmp_path, tiny_task, replay_task):
    for task, kind in ((tiny_task, WorkerClient), (replay_task, ReplayMeasurer)):
        with Evaluator(task, tmp_path / task.id) as evaluator:
            assert isinstance(evaluator.measurer, Measurer) and isinstance(evaluator.measurer, kind)
            assert evaluator.fingerprint is evaluator.measurer.fingerprint and evaluator.measurer.starts == 0
    assert not isinstance(object(), Measurer)


def test_a_recording_runs_only_the_values_it_holds(tmp_path):
    rows = [row for row in read_recording(ROOT / "envs" / "recordings" / "smollm2-cpu.jsonl")
            if row["config"]["batch_size"] != 16 and row["config"]["dtype"] == "float32"]
    (tmp_path / "recording.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (tmp_path / "task.yaml").write_text(f"id: partial\nbackend: replay\nrecording: recording.jsonl\n"
                                        f"search_space: {ROOT / 'search_spaces' / 'smollm2-cpu-reduced.yaml'}\n")
    with Evaluator(load_task(tmp_path / "task.yaml"), tmp_path / "run") as evaluator:
        allowed = evaluator.runnable_values()
    assert allowed["batch_size"] == [1, 4, 8] and allowed["dtype"] == ["float32"]
    assert allowed["quantization"] == ["none", "int8-dynamic"]
