"""Measurement cache: one JSON file per key, shareable by workers.

The key (built by the Evaluator) hashes everything that can change a number: task, model identity and seed,
workload, accuracy spec, config, the hardware/software fingerprint and the measurement version. Only ``ok``
and ``infeasible`` results are stored (see ``Status.cacheable``). Entries are strict JSON: a NaN or an infinity
is stored as null, and an entry holding one (written by an older version) is a miss, with a warning.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tuner.records import RECORD_FIELDS, finite_or_null, rejected

# Bumped when infertune's own measuring code changes what a recorded figure means, so older results miss.
# 2: every config starts from a fresh compile state (before, compiled configs reused earlier configs' graphs).
MEASUREMENT_VERSION = 2


def cache_key(parts: Mapping[str, Any]) -> str:
    """A stable hash of everything a measurement depends on."""
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


class MeasurementCache:
    """A folder of ``<key>.json`` results; writes are atomic so concurrent workers never read half a file."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def get(self, key: str) -> dict[str, Any] | None:
        """The stored record for ``key``, or None: a miss, also for an entry that is not a record or holds a NaN
        or an infinity (never served; measured again and overwritten)."""
        path = self.folder / f"{key}.json"
        try:
            stored = json.loads(path.read_bytes())
        except (OSError, ValueError):  # ValueError: bad JSON, and bytes that are not UTF-8
            return None
        return None if rejected(stored, RECORD_FIELDS, path, 1, then="a miss, measured again") else stored

    def put(self, key: str, record: Mapping[str, Any]) -> None:
        """Store a record under ``key`` (write to a temporary file, then rename)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=self.folder, suffix=".tmp")
        with os.fdopen(handle, "w") as out:
            json.dump(finite_or_null(record), out, allow_nan=False)
        os.replace(temporary, self.folder / f"{key}.json")
