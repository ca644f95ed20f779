"""design §13 at the command line: every config failing stops early, a full disk keeps what was written."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

from tests.helpers import REPLAY, ROOT, TINY
from tuner.records import read_records


def _tune(runs, env, *extra: str, variables: dict | None = None, preexec=None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "tuner.cli", "--runs-dir", str(runs), "tune", str(env), "--no-mlflow", *extra]
    return subprocess.run(command, capture_output=True, text=True, cwd=ROOT, env={**os.environ, **(variables or {})},
                          timeout=600, preexec_fn=preexec)


def test_every_config_failing_stops_after_three_with_the_first_error(tmp_path):
    result = _tune(tmp_path, TINY, "--agent", "random", "--budget", "10", "--run", "broken",
                   variables={"INFERTUNE_ENABLE_FAULTS": "1", "INFERTUNE_FAULT": "raise"})
    assert result.returncode == 1, result.stderr[-2000:]
    assert result.stderr.strip() == ("infertune: error: stopped: the first 3 measured configs all failed (3 of 10 "
                                     "measurements spent); first error: InjectedError: fault injected: raise")
    records = read_records(tmp_path / "broken" / "records.jsonl")
    assert [record.status for record in records if record.status != "infeasible"] == ["error"] * 3


def _limit_file_size(limit: int):
    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))  # writes past it fail with EFBIG, as on a full disk
    return apply


def test_a_full_disk_keeps_every_record_written_before_and_resume_finishes(tmp_path):
    full = _tune(tmp_path, REPLAY, "--agent", "random", "--budget", "40", "--run", "full",
                 preexec=_limit_file_size(24_000))
    assert full.returncode == 1, full.stderr[-2000:]
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "no space left writing" in lines[0] and "records.jsonl" in lines[0]
    assert "infertune tune" in lines[0] and "--resume full" in lines[0] and "Traceback" not in full.stderr
    raw = (tmp_path / "full" / "records.jsonl").read_bytes().split(b"\n")
    kept = read_records(tmp_path / "full" / "records.jsonl")
    assert 5 <= len(kept) < 40 and len(raw) - 1 <= len(kept) + 1  # at most the last line is torn
    assert [json.loads(line)["trial"] for line in raw[:len(kept)]] == list(range(len(kept)))
    resumed = _tune(tmp_path, REPLAY, "--resume", "full")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    records = read_records(tmp_path / "full" / "records.jsonl")
    assert records[:len(kept)] == kept and [record.trial for record in records] == list(range(len(records)))
    assert json.loads((tmp_path / "full" / "summary.json").read_text())["measurements"] == 40
