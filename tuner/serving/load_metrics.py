"""The serving metrics of a load run (design §15 names, seconds) and whether repeated runs agree."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from tuner.serving.loadgen import LoadRun, RequestSample
from tuner.util.numbers import percentile

SLO_FIELDS = {"ttft": "ttft_s", "itl": "itl_s", "e2e": "e2e_s"}  # an SLO's metric prefix -> the request's figure
MAX_SPREAD = 0.15  # repeated load runs must agree on goodput and request throughput within this relative spread


def request_meets(sample: RequestSample, slo: Mapping[str, float]) -> bool:
    """Whether one request met every SLO: each SLO's seconds is a per-request bound on its quantity."""
    if not sample.ok:
        return False
    for name, seconds in slo.items():
        value = getattr(sample, SLO_FIELDS[name.split("_", 1)[0]])
        if value is None or value > seconds:
            return False
    return True


def run_metrics(run: LoadRun, slo: Mapping[str, float]) -> dict[str, Any]:
    """Percentiles, throughput and goodput of one load run; a figure nothing measured is None."""
    done = [sample for sample in run.samples if sample.ok]
    ttft = [sample.ttft_s for sample in done if sample.ttft_s is not None]
    itl = [sample.itl_s for sample in done if sample.itl_s is not None]
    e2e = [sample.e2e_s for sample in done if sample.e2e_s is not None]
    duration = run.duration_s if run.duration_s > 0 else None
    good = sum(request_meets(sample, slo) for sample in run.samples)
    return {
        "ttft_p50_s": percentile(ttft, 0.50), "ttft_p95_s": percentile(ttft, 0.95),
        "ttft_p99_s": percentile(ttft, 0.99),
        "itl_p50_s": percentile(itl, 0.50), "itl_p95_s": percentile(itl, 0.95), "e2e_p95_s": percentile(e2e, 0.95),
        "requests_per_s": len(done) / duration if duration else None,
        "output_tokens_per_s": sum(sample.output_tokens for sample in done) / duration if duration else None,
        "goodput_rps": good / duration if duration else None,
        "failed_requests": len(run.samples) - len(done),
        "load_s": run.duration_s,  # how long the load ran (the rest of a trial is harness: start, warm-up, ...)
    }


def combine(runs: Sequence[dict[str, Any]]) -> tuple[dict[str, Any], bool, float | None]:
    """(median of each figure over the runs, whether the runs agree, their relative spread).

    The runs agree when goodput and request throughput each spread by at most ``MAX_SPREAD`` of their median
    (a figure at 0 in every run agrees).
    """
    combined: dict[str, Any] = {}
    for name in runs[0]:
        values = [run[name] for run in runs if run.get(name) is not None]
        combined[name] = statistics.median(values) if values else None
    spreads = []
    for name in ("goodput_rps", "requests_per_s"):
        values = [run.get(name) for run in runs]
        if any(value is None for value in values):
            return combined, False, None
        middle = statistics.median(values)
        spreads.append((max(values) - min(values)) / middle if middle > 0 else 0.0)
    spread = max(spreads)
    return combined, spread <= MAX_SPREAD, spread
