"""Record: one measured config (DESIGN §6), appended and flushed to ``runs/<run>/records.jsonl``."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = 1


@dataclass
class Record:
    """One line of records.jsonl."""

    run: str
    task: str
    space: str
    trial: int
    agent: str
    config: dict[str, Any]
    status: str
    error: dict[str, Any] | None
    metrics: dict[str, Any]
    objective: float
    feasible: bool
    cached: bool
    fingerprint: dict[str, Any]
    started_at: str
    duration_s: float
    info: dict[str, Any] = field(default_factory=dict)  # code path taken, time split; not part of the score
    features: dict[str, Any] | None = None  # the task's model, hardware and workload (DESIGN §14); None: unknown
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with ``schema`` first, as in DESIGN §6."""
        data = asdict(self)
        return {"schema": data.pop("schema"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record (unknown keys are ignored so newer files still read)."""
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def append_record(path: Path, record: Record) -> None:
    """Append one record and push it to disk before returning, so a kill loses nothing already measured.

    A torn last line (a kill or a full disk mid-write) is closed first, so it cannot swallow this record.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(record.to_dict(), separators=(",", ":")) + "\n"
    descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        if os.fstat(descriptor).st_size > 0 and not _ends_with_newline(path):
            line = "\n" + line
        data = line.encode()
        while data:  # unbuffered: a short write (a full disk) raises here, naming the file
            data = data[os.write(descriptor, data):]
        os.fsync(descriptor)
    except OSError as error:  # the lines before this one stay valid
        error.filename = error.filename or str(path)
        raise
    finally:
        os.close(descriptor)


def _ends_with_newline(path: Path) -> bool:
    with open(path, "rb") as existing:
        existing.seek(-1, os.SEEK_END)
        return existing.read(1) == b"\n"


def read_records(path: Path) -> list[Record]:
    """Every complete record in a file; a torn last line (a kill mid-write) is skipped."""
    if not path.is_file():
        return []
    records = []
    for line in path.read_text().splitlines():
        try:
            records.append(Record.from_dict(json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return records
