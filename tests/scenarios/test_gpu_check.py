"""benchmarks/gpu_check.py runs end to end (on the CPU here, with the tiny model) and saves its table."""

from __future__ import annotations

import csv
import subprocess
import sys

from tests.helpers import ROOT, TINY


def test_gpu_check_smoke_on_cpu(tmp_path):
    command = [sys.executable, "benchmarks/gpu_check.py", "--env", str(TINY), "--device", "cpu", "--dtypes",
               "float32", "--batches", "2", "--new-tokens", "8", "--no-oom", "--out", str(tmp_path)]
    result = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(tmp_path / "gpu_check.csv") as handle:
        rows = list(csv.DictReader(handle))
    labels = [(row["dtype"], row["attention"], row["cache"], row["batch"]) for row in rows]
    assert labels[:3] == [("float32", "eager", "dynamic", "1"), ("float32", "sdpa", "dynamic", "2"),
                          ("float32", "sdpa", "static+compile", "2")]
    assert all(row["status"] in ("ok", "unstable") for row in rows[:3])
    assert int(rows[2]["graphs_compiled"]) > 0  # the compiled row paid for compiling its shape in warmup
    assert all(row["design_tokens_per_s"] == "" for row in rows)  # §12 numbers are H100 numbers: not on CPU
    assert "tok/s" in result.stdout and "configs in" in result.stdout
