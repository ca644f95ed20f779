"""The replay backend: answers measurements from a recorded records.jsonl, with no inference.

A recorded landscape (from ``infertune measure`` or ``tune`` on any machine) can be tuned again in seconds,
which makes agent comparisons cheap and exactly repeatable.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from tuner.measure.faults import replay_delay
from tuner.measure.protocol import error_payload
from tuner.records import RECORDING_FIELDS, Status, config_key, rejected
from tuner.space import SearchSpace
from tuner.util.errors import ConfigError
from tuner.util.text_file import read_text

PREFERENCE = {Status.OK: 0, Status.UNSTABLE: 1, Status.INFEASIBLE: 2}  # the best-measured copy of a config wins


def read_recording(path: Path) -> list[dict[str, Any]]:
    """The records of a JSONL file as dicts (design §6); a torn line is skipped, and so is a line that is not a
    record or holds a NaN or an infinity (a one-line warning names the file and line): never scored or replayed."""
    rows = []
    for number, line in enumerate(read_text(path).splitlines(), start=1):
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not rejected(row, RECORDING_FIELDS, path, number):
            rows.append(row)
    return rows


def recording_identity(path: Path) -> str:
    """Name and content hash of a recording (part of the cache key)."""
    return f"{path.name}:{hashlib.sha256(path.read_bytes()).hexdigest()[:16]}"


class ReplayMeasurer:
    """The replay measurer: looks configs up in a recording; a config it lacks is infeasible ("not in recording")."""

    starts = 0  # no process: nothing is ever run
    pid = None

    def __init__(self, recording: Path, space: SearchSpace):
        self.recording = recording
        records = read_recording(recording)
        if not records:
            raise ConfigError("recording holds no records", source=str(recording))
        self.fingerprint: dict[str, Any] = dict(records[0].get("fingerprint") or {"device": "replay"})
        self.features = next((record["features"] for record in records if record.get("features")), None)
        self.skipped = 0
        self._table: dict[str, dict[str, Any]] = {}
        for record in records:
            try:
                known = {name: value for name, value in record["config"].items() if name in space.names}
                config = space.complete(known, source=str(recording))
            except ConfigError:
                self.skipped += 1  # a value outside this task's space: not part of this landscape
                continue
            key = config_key(config)
            held = self._table.get(key)
            if held is None or PREFERENCE.get(Status(record["status"]), 9) < PREFERENCE.get(Status(held["status"]), 9):
                self._table[key] = record

    def configs(self) -> list[dict[str, Any]]:
        """Every config the recording answers for."""
        return [json.loads(key) for key in self._table]

    def runnable_values(self, space: SearchSpace) -> dict[str, list[Any]]:
        """Per knob, the values of the recorded configs that ran: what a live run on that machine would allow.

        A value the recording holds only as ``infeasible`` (shard_count 2 on one GPU) is masked, as the live
        worker masks what its machine cannot run; a value it lacks could only come back "not in recording".
        """
        ran = [json.loads(key) for key, record in self._table.items() if record["status"] != Status.INFEASIBLE.value]
        configs = ran or self.configs()
        return {name: [value for value in space.knob(name).choices if any(config[name] == value for config in configs)]
                for name in space.names}

    def request(self, payload: dict[str, Any], timeout_s: float, on_phase: Any = None) -> dict[str, Any]:
        """The recorded outcome of ``payload['config']`` (read back at once: no phases to tell ``on_phase``)."""
        if payload.get("op") == "describe":
            return {"status": Status.OK.value, "metrics": {}, "info": {}, "error": None, "features": self.features}
        replay_delay()
        record = self._table.get(config_key(payload["config"]))
        if record is None:
            return {"status": Status.INFEASIBLE.value, "metrics": {}, "info": {"replay": True},
                    "error": error_payload("NotRecorded", "not in recording"), "features": self.features}
        recorded_info = record.get("info") if isinstance(record.get("info"), dict) else {}
        # a serving record's load and SLOs say what its figures mean; exports quote them
        measured_at = {key: recorded_info[key] for key in ("load", "slo") if isinstance(recorded_info.get(key), dict)}
        return {"status": record["status"], "metrics": dict(record.get("metrics") or {}), "error": record.get("error"),
                "info": {"replay": True, "recorded_run": record.get("run"), "recorded_trial": record.get("trial"),
                         "recorded_duration_s": record.get("duration_s"), **measured_at},
                "features": record.get("features") or self.features}

    def close(self) -> None:
        """Nothing to release."""
