"""Where a run's wall time went: the configs running (inference, their accuracy) and the overhead around them."""

from __future__ import annotations

from collections.abc import Sequence

from tuner.records import Record
from tuner.util.numbers import is_number, percentile

PARTS = ("loading", "compile and first-call setup", "inference", "accuracy scoring", "reference answers",
         "worker overhead", "failed measurements", "replay lookups", "tuner overhead")
MEASURING = ("inference", "accuracy scoring")  # the configs themselves running; every other part is overhead
FAILED = ("error", "crash", "oom", "timeout")  # their time is one lump: no step of theirs reported a figure


def _seconds(value: object) -> float:
    return float(value) if is_number(value) else 0.0


def _steady_call_s(metrics: dict) -> float:
    """How long one generate call of the config takes once warm: what its warm-up call would cost without setup.

    A static-batch measurement's ``latency_p50_s`` is one call end to end; a serving trial's warm-up is requests
    sent before timing, all of it setup (its latency figures describe single requests, not the warm-up).
    """
    if "server_start_s" in metrics:
        return 0.0
    return _seconds(metrics.get("latency_p50_s"))


def time_split(records: Sequence[Record], wall_s: float | None) -> dict[str, float]:
    """Seconds per part of ``PARTS``; ``wall_s`` (the run's duration, when known) adds the tuner's own share.

    A record's measurement splits into what its info says each step took. Its warm-up call counts as inference
    up to the time of one steady call (the model ran the workload); the excess is compile (a cold or cached
    graph) and first-call setup. Accuracy splits into the reference's answers (``info.reference_s``: computed
    once per task, machine and software, then read from disk) and the config's own scoring. A serving trial's
    server start counts as loading. The rest of a record's duration is the worker's overhead (process start,
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
        setup = max(0.0, warmup - _steady_call_s(metrics))
        inference = max(0.0, _seconds(info.get("inference_s")) - setup) + _seconds(metrics.get("load_s"))
        accuracy = _seconds(info.get("accuracy_s"))
        reference = min(accuracy, _seconds(info.get("reference_s")))
        split["loading"] += loading
        split["compile and first-call setup"] += setup
        split["inference"] += inference
        split["accuracy scoring"] += accuracy - reference
        split["reference answers"] += reference
        split["worker overhead"] += max(0.0, record.duration_s - loading - setup - inference - accuracy)
    if wall_s is not None and is_number(wall_s):
        measured = sum(record.duration_s for record in records if is_number(record.duration_s))
        split["tuner overhead"] = max(0.0, wall_s - measured)
    return split


def overhead_share(split: dict[str, float]) -> float | None:
    """The share of the split's time not spent running the configs (loading, compile, reference, harness)."""
    total = sum(split.values())
    return None if total <= 0 else 1.0 - sum(split[part] for part in MEASURING) / total


def trial_overhead_mean(records: Sequence[Record]) -> float | None:
    """The overhead's share of a trial, averaged over the run's measured trials (each its own split, as in
    ``time_split``: loading, compile, the reference's answers and the worker's overhead over the trial's duration)."""
    shares = [overhead_share(time_split([record], None)) for record in records
              if not record.cached and is_number(record.duration_s) and record.duration_s > 0
              and not (record.info or {}).get("replay")]
    present = [share for share in shares if share is not None]
    return sum(present) / len(present) if present else None


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
