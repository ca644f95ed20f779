"""The observation vector: task context, last config and its outcome, best so far, remaining budget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tuner.env.codec import ActionCodec
from tuner.records import Record, Status
from tuner.util.numbers import is_number

STATUSES = [status.value for status in Status]
LIMIT = 10.0  # every observation entry, of either env, lies in [-LIMIT, LIMIT] (the Box's bounds)
OUTCOME = ("tokens_per_s", "latency_p95_s", "top1_agree", "peak_mem_mb")  # the last record's metrics shown


def _log1p(value: Any) -> float:
    """log(1 + value) for a measured figure; 0 for a missing one (null, NaN), which its flag then marks."""
    return math.log1p(max(float(value), 0.0)) if is_number(value) else 0.0


def outcome_features(metrics: dict[str, Any]) -> list[float]:
    """The last record's metrics, scaled, then one flag per metric: 1 = measured, 0 = missing (null).

    A missing figure is not a zero (a null ``top1_agree`` is not "no agreement"): the flag tells them apart.
    """
    values = [_log1p(metrics.get("tokens_per_s")) / 5.0, _log1p(metrics.get("latency_p95_s")),
              float(metrics["top1_agree"]) if is_number(metrics.get("top1_agree")) else 0.0,
              _log1p(metrics.get("peak_mem_mb")) / 5.0]
    return values + [1.0 if is_number(metrics.get(name)) else 0.0 for name in OUTCOME]


def _scaled(score: float | None) -> float:
    return score / 5.0 if is_number(score) else 0.0


class ObservationBuilder:
    """Builds the flat Box observation of design §8 from the session's state."""

    def __init__(self, codec: ActionCodec, context: list[float]):
        self.codec = codec
        self.context = np.array(context, dtype=np.float32)
        self.size = len(context) + int(codec.nvec.sum()) + 2 * len(OUTCOME) + len(STATUSES) + 3

    def build(self, last: Record | None, best_score: float | None, remaining_share: float) -> np.ndarray:
        """The observation after ``last`` (None before the first step)."""
        outcome = outcome_features(last.metrics if last else {})
        status = [1.0 if last and last.status == name else 0.0 for name in STATUSES]
        scores = [_scaled(last.objective if last else None), _scaled(best_score), remaining_share]
        vector = np.concatenate([self.context, self.codec.one_hot(last.config if last else None),
                                 np.array(outcome + status + scores, dtype=np.float32)])
        return np.clip(vector, -LIMIT, LIMIT).astype(np.float32)


def task_context(device: str, new_tokens: int, num_requests: int, prompt_tokens: int) -> list[float]:
    """Features of the task itself: device kind and workload size."""
    return [1.0 if device == "cuda" else 0.0, _log1p(new_tokens) / 5.0, _log1p(num_requests) / 5.0,
            _log1p(prompt_tokens) / 5.0]
