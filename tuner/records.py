"""Record: one measured config and its Status (design §6), appended and flushed to ``runs/<run>/records.jsonl``."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

SCHEMA = 1
_WARNED: set[tuple[str, int]] = set()  # (file, line) already reported in this process: each bad line warns once


class Status(StrEnum):
    """Outcome of measuring one config."""

    OK = "ok"
    UNSTABLE = "unstable"  # usable numbers whose repeats did not agree; never ranked best
    PRUNED = "pruned"  # stopped early: broke a bound, or too slow to win; partial figures, never cached or best
    INFEASIBLE = "infeasible"  # cannot run here (constraint, hardware, missing library)
    OOM = "oom"
    CRASH = "crash"  # the worker process died
    TIMEOUT = "timeout"
    ERROR = "error"  # an exception inside the worker

    @property
    def measured(self) -> bool:
        """Whether the metrics are real measurements of the whole protocol (design §5), not partial ones."""
        return self in (Status.OK, Status.UNSTABLE)

    @property
    def scored(self) -> bool:
        """Whether the objective scores the figures it has: a pruned record's partial ones too (design §7)."""
        return self in (Status.OK, Status.UNSTABLE, Status.PRUNED)

    @property
    def cacheable(self) -> bool:
        """Whether measuring again with the same cache key gives the same outcome, so the cache may answer.

        ``unstable`` is not: its repeats disagreed, so another try may be ``ok``. Failures (oom, crash, timeout,
        error) may be transient. ``infeasible`` is, because the key holds every machine fact a backend rules
        it out by (device and its count, cores, library versions, model); a constraint violation is decided
        before the cache and never stored.
        """
        return self in (Status.OK, Status.INFEASIBLE)


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
    features: dict[str, Any] | None = None  # the task's model, hardware and workload (design §14); None: unknown
    schema: int = SCHEMA

    def to_dict(self) -> dict[str, Any]:
        """JSON-able dict with ``schema`` first, as in design §6."""
        data = asdict(self)
        return {"schema": data.pop("schema"), **data}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Record:
        """Rebuild a record (unknown keys are ignored so newer files still read)."""
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{key: value for key, value in data.items() if key in known})


def config_key(config: Mapping[str, Any]) -> str:
    """Canonical text of a complete config: one key per config, whatever the order of its knobs."""
    return json.dumps(dict(config), sort_keys=True)


def append_record(path: Path, record: Record) -> None:
    """Append one record and push it to disk before returning, so a kill loses nothing already measured.

    A torn last line (a kill or a full disk mid-write) is closed first, so it cannot swallow this record.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    line = strict_json(record.to_dict(), separators=(",", ":")) + "\n"
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
    """Every complete record in a file; a torn last line (a kill mid-write) is skipped, and so is a line that is
    not a record or holds a NaN or an infinity (with a one-line warning naming the file and line)."""
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_bytes().decode("utf-8", "replace").splitlines(), start=1):
        try:
            data = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not rejected(data, RECORD_FIELDS, path, number):
            records.append(Record.from_dict(data))
    return records


_MAYBE_NUMBER = (int, float, type(None))
_MAYBE_DICT = (dict, type(None))
# the type of every field a record must have (design §6); ``bool`` is refused where a number is wanted
RECORD_FIELDS: dict[str, type | tuple[type, ...]] = {
    "run": str, "task": str, "space": str, "trial": int, "agent": str, "config": dict, "status": str,
    "error": _MAYBE_DICT, "metrics": dict, "objective": _MAYBE_NUMBER, "feasible": bool, "cached": bool,
    "fingerprint": dict, "started_at": str, "duration_s": _MAYBE_NUMBER}
# checked when present (a recording needs only config and status; what it has must still be of the right type)
OPTIONAL_FIELDS: dict[str, type | tuple[type, ...]] = {
    "info": dict, "features": _MAYBE_DICT, "metrics": _MAYBE_DICT, "error": _MAYBE_DICT, "fingerprint": dict}
RECORDING_FIELDS: dict[str, type | tuple[type, ...]] = {"config": dict, "status": str}  # all a replay needs


def shape_problem(data: Any, required: dict[str, type | tuple[type, ...]]) -> str | None:
    """What makes ``data`` not a record (``status is 5, not str``), or None when it is one."""
    if not isinstance(data, dict):
        return f"{json.dumps(data)[:40]} is not a record (a JSON object)"
    optional = {name: kind for name, kind in OPTIONAL_FIELDS.items() if name not in required}
    for name, kind in {**required, **optional}.items():  # in order, and a required field's own type
        if name not in data:
            if name in required:
                return f"{name} is missing"
            continue
        value = data[name]
        wanted = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value, wanted) or (isinstance(value, bool) and bool not in wanted):
            return f"{name} is {json.dumps(value)[:40]}, not {' or '.join(_type_name(each) for each in wanted)}"
    if data["status"] not in set(Status):
        return f"status is {json.dumps(data['status'])[:40]}, not one of {', '.join(Status)}"
    for name, value in (data.get("metrics") or {}).items():
        if not isinstance(value, _MAYBE_NUMBER) or isinstance(value, bool):
            return f"metrics.{name} is {json.dumps(value)[:40]}, not a number or null"
    return None


def _type_name(kind: type) -> str:
    return {"NoneType": "null", "str": "text", "int": "an integer", "float": "a number", "dict": "an object",
            "bool": "true/false"}.get(kind.__name__, kind.__name__)


def rejected(data: Any, required: dict[str, type | tuple[type, ...]], source: Path | str, line: int,
             then: str = "line skipped") -> bool:
    """True when ``data`` is not a record of that shape or holds a NaN or an infinity (each warns once)."""
    return rejected_shape(data, required, source, line, then) or rejected_non_finite(data, source, line)


def rejected_shape(data: Any, required: dict[str, type | tuple[type, ...]], source: Path | str, line: int,
                   then: str = "line skipped") -> bool:
    """True when ``data`` (read from ``source`` at ``line``) is not a record; warns once per file and line."""
    problem = shape_problem(data, required)
    if problem is None:
        return False
    _warn_once(source, line, f"{problem}; {then}")
    return True


def non_finite(value: Any) -> str | None:
    """Where the first NaN or infinity in ``value`` is (``metrics.tokens_per_s``), or None when there is none."""
    found = _first_non_finite(value, "")
    return found[0] if found else None


def _first_non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """(dotted path, value) of the first NaN or infinity in ``value``."""
    if isinstance(value, float) and not math.isfinite(value):
        return where or "value", value
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list | tuple) else ()
    for key, item in items:
        found = _first_non_finite(item, f"{where}.{key}" if where else str(key))
        if found is not None:
            return found
    return None


def finite_or_null(value: Any) -> Any:
    """``value`` with every NaN or infinity replaced by None (null: not measured), so JSON files stay valid JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: finite_or_null(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_or_null(item) for item in value]
    return value


def strict_json(data: Any, **options: Any) -> str:
    """JSON text any strict parser reads: NaN and infinities are written as null."""
    return json.dumps(finite_or_null(data), allow_nan=False, **options)


def rejected_non_finite(data: Any, source: Path | str, line: int) -> bool:
    """True when ``data`` (one record read from ``source`` at ``line``) holds a NaN or an infinity; warns once."""
    found = _first_non_finite(data, "")
    if found is None:
        return False
    where, value = found
    _warn_once(source, line, f"{where} is {json.dumps(value)} (not a finite number); record skipped")
    return True


def _warn_once(source: Path | str, line: int, message: str) -> None:
    """One warning line per file and line in this process (a file is read many times in a run)."""
    if (str(source), line) not in _WARNED:
        _WARNED.add((str(source), line))
        print(f"infertune: warning: {source}:{line}: {message}", file=sys.stderr, flush=True)
