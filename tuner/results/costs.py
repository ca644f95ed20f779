"""Where a run's wall time went: model loading, warmup and compile, timed inference, accuracy scoring, overhead."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.records import Record
from tuner.util.numbers import is_number, percentile

PARTS = ("loading", "warmup and compile", "inference", "accuracy scoring", "worker overhead", "failed measurements",
         "replay lookups", "tuner overhead")
FAILED = ("error", "crash", "oom", "timeout")  # their time is one lump: no step of theirs reported a figure


def _seconds(value: object) -> float:
    return float(value) if is_number(value) else 0.0


def time_split(records: Sequence[Record], wall_s: float | None) -> dict[str, float]:
    """Seconds per part of ``PARTS``; ``wall_s`` (the run's duration, when known) adds the tuner's own share.

    A record's measurement splits into what its info says each step took (warmup from ``warmup_s``; a serving
    trial's server start counts as loading); the rest of its duration is the worker's overhead (process start,
    messages, a tensor-parallel group's set-up). Cached records cost nothing; replayed ones only their lookup.
    """
    split = dict.fromkeys(PARTS, 0.0)
    for record in records:
        if record.cached or not is_number(record.duration_s):
            continue
        info, metrics = record.info or {}, record.metrics or {}
        if info.get("replay"):  # a recording's figures, read back: no inference ran
            split["replay lookups"] += record.duration_s
            continue
        if record.status in FAILED:
            split["failed measurements"] += record.duration_s
            continue
        loading = _seconds(info.get("load_s")) + _seconds(metrics.get("server_start_s"))
        warmup = _seconds(metrics.get("warmup_s"))
        inference = max(0.0, _seconds(info.get("inference_s")) - warmup) + _seconds(metrics.get("load_s"))
        accuracy = _seconds(info.get("accuracy_s"))
        split["loading"] += loading
        split["warmup and compile"] += warmup
        split["inference"] += inference
        split["accuracy scoring"] += accuracy
        split["worker overhead"] += max(0.0, record.duration_s - loading - warmup - inference - accuracy)
    if wall_s is not None and is_number(wall_s):
        measured = sum(record.duration_s for record in records if is_number(record.duration_s))
        split["tuner overhead"] = max(0.0, wall_s - measured)
    return split


def pruning_saved(records: Sequence[Record]) -> dict[str, float | int | None] | None:
    """What stopping measurements early saved (design §5), or None when nothing was pruned.

    ``saved_s`` is an estimate: each pruned measurement against the median whole measurement of the same run
    (ok or unstable, measured here, not cached); None when the run has no whole one to compare with.
    """
    pruned = [record for record in records if record.status == "pruned" and not record.cached]
    if not pruned:
        return None
    whole = sorted(record.duration_s for record in records
                   if record.status in ("ok", "unstable") and not record.cached and is_number(record.duration_s))
    median = percentile(whole, 0.5) if whole else None
    spent = sum(_seconds(record.duration_s) for record in pruned)
    return {"pruned": len(pruned),
            "at_accuracy": sum((record.info.get("pruned") or {}).get("stage") == "accuracy" for record in pruned),
            "spent_s": spent, "whole_median_s": median,
            "saved_s": None if median is None else sum(max(0.0, median - _seconds(record.duration_s))
                                                      for record in pruned)}
