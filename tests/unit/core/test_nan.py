"""NaN and infinity are no figures: rejected where read (with the file and line), never scored or ranked, never
written (every JSON file infertune writes parses with a strict parser)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import REPLAY, ROOT
from tuner.agents import make_agent
from tuner.evaluation.evaluator import Evaluator
from tuner.evaluation.session import TuningSession, best_record, rankable
from tuner.library.landscape import landscape_from_records, save_landscape_records
from tuner.measure.cache import MeasurementCache
from tuner.records import Record, append_record, read_records
from tuner.results.pareto import front_metrics, pareto_front
from tuner.run.tune import run_tune
from tuner.task import load_task

RECORDING = REPLAY.parent / "recordings" / "smollm2-cpu.jsonl"
SPACE = ROOT / "search_spaces" / "smollm2-cpu-reduced.yaml"
BEST = {"batch_size": 16, "dtype": "float32", "quantization": "none", "attn_implementation": "sdpa",
        "cache_implementation": "static", "compile": False, "shard_count": 1}  # the landscape's real best
POISON = (("tokens_per_s", math.nan), ("latency_p95_s", math.inf), ("peak_mem_mb", -math.inf))


def strict_load(text: str) -> Any:
    """JSON as a strict parser reads it: NaN, Infinity and numbers too large for a double are errors."""
    def number(token: str) -> float:
        value = float(token)
        if not math.isfinite(value):
            raise ValueError(f"{token} is not a finite number")
        return value

    def constant(token: str) -> Any:
        raise ValueError(f"{token} is not JSON")

    return json.loads(text, parse_constant=constant, parse_float=number)


def _task(folder: Path, rows: list[dict]) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "recording.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))  # NaN as Python writes it
    (folder / "task.yaml").write_text(
        f"id: poisoned\nbackend: replay\nrecording: recording.jsonl\nmodel: {{name: SmolLM2-135M-Instruct}}\n"
        f"search_space: {SPACE}\nobjective:\n  maximize: tokens_per_s\n  constraints:\n"
        f"    latency_p95_s: {{max: 10.0}}\n    top1_agree: {{min: 0.9}}\nbudget: 16\nseed: 0\n")
    return folder / "task.yaml"


def poisoned_and_clean(folder: Path) -> tuple[Path, Path, dict[int, str]]:
    """Two replay tasks: the shipped landscape with non-finite figures in four lines, and the same without those
    lines. The first poisoned line is a NaN copy of the best config placed before its real record (the replay
    keeps a config's first ``ok`` copy); then three ok configs each get a NaN or an infinity. Returns both task
    files and, per poisoned line number, the field it holds."""
    rows = [json.loads(line) for line in RECORDING.read_text().splitlines()]
    best = next(index for index, row in enumerate(rows) if row["config"] == BEST and row["status"] == "ok")
    others = [index for index, row in enumerate(rows) if row["status"] == "ok" and index != best][:3]
    poisoned, clean, bad = [], [], {}
    for index, row in enumerate(rows):
        if index == best:
            copy = json.loads(json.dumps(row))
            copy["metrics"]["tokens_per_s"] = math.nan
            poisoned.append(copy)
            bad[len(poisoned)] = "metrics.tokens_per_s"
        if index in others:
            name, value = POISON[others.index(index)]
            row = json.loads(json.dumps(row))
            row["metrics"][name] = value
            poisoned.append(row)
            bad[len(poisoned)] = f"metrics.{name}"
            continue
        poisoned.append(row)
        clean.append(row)
    return _task(folder / "poisoned", poisoned), _task(folder / "clean", clean), bad


def _json_files(*folders: Path) -> list[Path]:
    return [path for folder in folders for path in folder.rglob("*") if path.suffix in (".json", ".jsonl")]


def test_a_recording_with_nan_and_infinity_tunes_as_if_those_lines_were_not_there(tmp_path, capsys):
    poisoned, clean, bad = poisoned_and_clean(tmp_path)
    results = {}
    for name, task_file in (("poisoned", poisoned), ("clean", clean)):
        results[name] = run_tune(load_task(task_file), make_agent("random"), budget=100, seed=0,
                                 run_dir=tmp_path / "runs" / name, cache_dir=tmp_path / "runs" / f"cache-{name}",
                                 out=None)
    warnings = [line for line in capsys.readouterr().err.splitlines() if "warning" in line]
    recording = poisoned.parent / "recording.jsonl"
    assert warnings == [f"infertune: warning: {recording}:{line}: {field} is "
                        f"{'NaN' if 'tokens' in field else '-Infinity' if 'mem' in field else 'Infinity'} "
                        f"(not a finite number); record skipped" for line, field in sorted(bad.items())]
    result, expected = results["poisoned"], results["clean"]
    assert result.best is not None and result.best.config == BEST and rankable(result.best)
    assert result.best.metrics["tokens_per_s"] == pytest.approx(43.77, abs=0.01)
    assert [record.config for record in result.front] == [record.config for record in expected.front]
    assert [name for name, _ in front_metrics(result.records)] == ["tokens_per_s", "latency_p95_s", "top1_agree",
                                                                    "peak_mem_mb"]  # none dropped for a NaN
    written = _json_files(tmp_path / "runs")
    assert {"records.jsonl", "summary.json", "run.json"} <= {path.name for path in written}
    for path in written:
        for line in path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]:
            strict_load(line)


def test_records_and_cache_entries_with_nan_are_skipped_with_file_and_line(tmp_path, capsys):
    records = tmp_path / "records.jsonl"
    good = _record({"tokens_per_s": 10.0})
    lines = [json.dumps(good.to_dict()), json.dumps(_record({"tokens_per_s": math.inf}).to_dict())]
    records.write_text("\n".join(lines) + "\n")
    assert [record.metrics for record in read_records(records)] == [{"tokens_per_s": 10.0}]
    cache = MeasurementCache(tmp_path / "cache")
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "k.json").write_text(json.dumps({**good.to_dict(), "metrics": {"kl": math.nan}}))
    assert cache.get("k") is None  # a miss: measured again rather than served
    assert capsys.readouterr().err.splitlines() == [
        f"infertune: warning: {records}:2: metrics.tokens_per_s is Infinity (not a finite number); record skipped",
        f"infertune: warning: {tmp_path / 'cache' / 'k.json'}:1: metrics.kl is NaN (not a finite number); "
        f"record skipped"]


def _record(metrics: dict[str, float]) -> Record:
    return Record(run="r", task="t", space="s@1", trial=0, agent="test", config={"batch_size": 1}, status="ok",
                  error=None, metrics=metrics, objective=1.0, feasible=True, cached=False,
                  fingerprint={"device": "cpu"}, started_at="2026-11-26T12:00:00Z", duration_s=1.0)


def test_a_measurement_that_returns_nan_is_written_as_null_and_never_ranked(tmp_path):
    """A live measurer that hands back NaN (a broken kernel, a division by zero): the record and the cache entry
    are strict JSON, and the session holds null, as the files do."""
    with Evaluator(load_task(REPLAY), tmp_path / "run", cache_dir=tmp_path / "cache") as evaluator:
        replayed = evaluator.measurer.request

        def broken(payload: dict, timeout_s: float, on_phase: Any = None) -> dict:
            reply = replayed(payload, timeout_s, on_phase)
            if payload.get("config") == BEST:
                reply["metrics"] = {**reply["metrics"], "tokens_per_s": math.nan, "peak_mem_mb": math.inf}
            return reply

        evaluator.measurer.request = broken
        session = TuningSession(evaluator, 5, on_stop=None)
        nan = session.evaluate(BEST)
        fine = session.evaluate({**BEST, "batch_size": 8})
    assert nan.metrics["tokens_per_s"] is None and nan.metrics["peak_mem_mb"] is None and not rankable(nan)
    assert session.best is fine and pareto_front(session.records) == [fine]
    for path in _json_files(tmp_path / "run", tmp_path / "cache"):
        for line in path.read_text().splitlines():
            strict_load(line)


def test_a_record_holding_nan_is_never_ranked_nor_on_a_pareto_front():
    """Records built in memory (not read from a file) get the same treatment as the files."""
    figures = {"tokens_per_s": 10.0, "latency_p95_s": 1.0, "top1_agree": 1.0, "peak_mem_mb": 100.0}
    real = _record(figures)
    broken = _record({**figures, "tokens_per_s": 50.0, "peak_mem_mb": math.nan})
    broken.config = {"batch_size": 4}
    assert pareto_front([real, broken]) == [real]
    assert len(front_metrics([real, broken])) == 4
    unscored = _record(figures)
    unscored.objective = math.nan
    assert not rankable(unscored) and best_record([unscored, real]) is real


def test_a_landscape_neither_scores_nor_writes_nan(tmp_path):
    row = {**_record({"tokens_per_s": math.inf, "latency_p95_s": 1.0, "top1_agree": 1.0}).to_dict(),
           "config": BEST}
    landscape = landscape_from_records("poisoned", [row], load_task(REPLAY).objective)
    outcome = landscape.outcomes[next(iter(landscape.outcomes))]
    assert outcome.value is None and not outcome.rankable and math.isnan(landscape.optimum_score)
    save_landscape_records(tmp_path / "landscape.jsonl", [row])
    assert strict_load((tmp_path / "landscape.jsonl").read_text())["metrics"]["tokens_per_s"] is None


def test_append_record_and_the_cache_write_null_for_nan(tmp_path):
    path = tmp_path / "records.jsonl"
    append_record(path, _record({"tokens_per_s": math.nan, "kl": -math.inf}))
    assert strict_load(path.read_text())["metrics"] == {"tokens_per_s": None, "kl": None}
    MeasurementCache(tmp_path / "cache").put("k", _record({"cv": math.nan}).to_dict())
    assert strict_load((tmp_path / "cache" / "k.json").read_text())["metrics"] == {"cv": None}
