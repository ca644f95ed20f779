"""records.jsonl: append-and-flush, and a torn last line (a kill mid-write) never hides earlier records."""

from __future__ import annotations

import json

from tuner.records import Record, append_record, read_records


def _record(trial: int) -> Record:
    return Record(run="r", task="t", space="s@1", trial=trial, agent="measure", config={"batch_size": 1},
                  status="ok", error=None, metrics={"tokens_per_s": 1.0}, objective=0.0, feasible=True, cached=False,
                  fingerprint={"device": "cpu"}, started_at="2026-11-26T12:00:00Z", duration_s=1.0)


def test_append_then_read_round_trips(tmp_path):
    path = tmp_path / "run" / "records.jsonl"
    for trial in range(3):
        append_record(path, _record(trial))
    lines = path.read_text().splitlines()
    assert len(lines) == 3
    assert next(iter(json.loads(lines[0]))) == "schema"
    assert [record.trial for record in read_records(path)] == [0, 1, 2]


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record(0))
    with open(path, "a") as out:
        out.write('{"schema": 1, "run": "r", "tri')
    assert [record.trial for record in read_records(path)] == [0]
