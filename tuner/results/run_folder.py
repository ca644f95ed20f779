"""A run folder read back: its kind, task, agent, budget, records, best deployable record and state."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tuner.evaluation.resume import spent_budget
from tuner.evaluation.session import best_record
from tuner.records import Record, read_records
from tuner.util.text_file import read_json_object

RUN_FILES = ("records.jsonl", "summary.json", "run.json", "compare.json")


@dataclass
class RunFolder:
    """What ``runs`` lists and ``show`` and ``report`` describe: one tune, measure or compare run."""

    path: Path
    kind: str  # tune, compare or measure
    state: str  # finished, interrupted (tune started, no summary yet) or measured (a measure run)
    task: str | None
    agent: str | None
    budget: int | None
    started: datetime | None
    records: list[Record] = field(default_factory=list)
    summary: dict[str, Any] | None = None  # summary.json (tune) or compare.json (compare)
    seed_runs: list[RunFolder] = field(default_factory=list)  # a compare run's per-seed tune runs

    @property
    def name(self) -> str:
        """The run's folder name, which every command takes as RUN."""
        return self.path.name

    @property
    def best(self) -> Record | None:
        """The best deployable record: stable timing, inside the objective's constraints, highest objective."""
        return best_record(self.records)

    @property
    def measurements(self) -> int:
        """Records that cost a measurement (cached and constraint-rejected ones are free)."""
        return sum(spent_budget(record) for record in self.records)


def is_run(path: Path) -> bool:
    """A folder that infertune wrote a run into."""
    return path.is_dir() and any((path / name).is_file() for name in RUN_FILES)


def _started(path: Path, records: list[Record]) -> datetime | None:
    for record in records:
        try:
            return datetime.strptime(record.started_at, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
        except (TypeError, ValueError):
            continue
    try:
        return datetime.fromtimestamp(os.stat(path).st_mtime, UTC)
    except OSError:
        return None


def read_run(path: Path) -> RunFolder:
    """The run in ``path`` (a folder for which ``is_run`` holds)."""
    compare = read_json_object(path / "compare.json")
    if compare is not None or any((child / "run.json").is_file() for child in path.iterdir() if child.is_dir()):
        seeds = sorted((read_run(child) for child in path.iterdir() if is_run(child)), key=lambda run: run.name)
        records = [record for run in seeds for record in run.records]
        agents = (compare or {}).get("agents") or []
        return RunFolder(path, "compare", "finished" if compare is not None else "interrupted",
                         (compare or {}).get("task") or next((run.task for run in seeds), None),
                         ",".join(row.get("agent", "?") for row in agents) or None, (compare or {}).get("budget"),
                         _started(path, records), records, compare, seeds)
    records = read_records(path / "records.jsonl")
    summary = read_json_object(path / "summary.json")
    settings = read_json_object(path / "run.json")
    if summary is None and settings is None:
        first = records[0] if records else None
        return RunFolder(path, "measure", "measured", first.task if first else None, first.agent if first else None,
                         None, _started(path, records), records)
    described = (summary or {}).get("agent") or {}
    agent = described.get("agent") if isinstance(described, dict) else None
    return RunFolder(path, "tune", "finished" if summary is not None else "interrupted",
                     (summary or settings or {}).get("task"), agent or (settings or {}).get("agent"),
                     (summary or settings or {}).get("budget"), _started(path, records), records, summary)


def list_runs(runs_dir: Path) -> list[RunFolder]:
    """Every run directly under ``runs_dir``, newest first."""
    if not runs_dir.is_dir():
        return []
    runs = [read_run(child) for child in runs_dir.iterdir() if is_run(child)]
    oldest = datetime.min.replace(tzinfo=UTC)
    return sorted(runs, key=lambda run: run.started or oldest, reverse=True)
