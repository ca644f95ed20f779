"""Bring a landscape recorded elsewhere into the library: the same records, with the task's features added.

    python -m tuner.learning.imports SOURCE.jsonl TARGET.jsonl FEATURES.json

Records that already carry features keep them; the rest get ``FEATURES.json`` (model, hardware, workload).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from tuner.library.landscape import save_landscape_records
from tuner.measure.backends.replay import read_recording

GROUPS = ("model", "hardware", "workload")


def with_features(rows: list[dict[str, Any]], features: dict[str, Any]) -> list[dict[str, Any]]:
    """The records, each with ``features`` (those it had are kept)."""
    missing = [group for group in GROUPS if not isinstance(features.get(group), dict)]
    if missing:
        raise ValueError(f"features lack the group(s) {', '.join(missing)}")
    return [{**row, "features": row.get("features") or features} for row in rows]


def main(argv: list[str]) -> int:
    """Convert one recording; prints how many records were written."""
    if len(argv) != 3:
        print(__doc__.strip().splitlines()[2].strip(), file=sys.stderr)
        return 2
    source, target, features = (Path(arg) for arg in argv)
    rows = with_features(read_recording(source), json.loads(features.read_text()))
    save_landscape_records(target, rows)
    print(f"{len(rows)} records -> {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
