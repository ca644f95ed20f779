"""The observation vector: task context, last config and its outcome, best so far, remaining budget."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from tuner.env.codec import ActionCodec
from tuner.measure.status import Status
from tuner.records import Record

STATUSES = [status.value for status in Status]
LIMIT = 10.0  # every feature is clipped to [-LIMIT, LIMIT]


def _log1p(value: Any) -> float:
    return math.log1p(max(float(value), 0.0)) if value is not None else 0.0


class ObservationBuilder:
    """Builds the flat Box observation of DESIGN §8 from the session's state."""

    def __init__(self, codec: ActionCodec, context: list[float]):
        self.codec = codec
        self.context = np.array(context, dtype=np.float32)
        self.size = len(context) + int(codec.nvec.sum()) + 4 + len(STATUSES) + 3

    def build(self, last: Record | None, best_score: float | None, remaining_share: float) -> np.ndarray:
        """The observation after ``last`` (None before the first step)."""
        metrics = last.metrics if last else {}
        outcome = [_log1p(metrics.get("tokens_per_s")) / 5.0, _log1p(metrics.get("latency_p95_s")),
                   float(metrics.get("top1_agree") or 0.0), _log1p(metrics.get("peak_mem_mb")) / 5.0]
        status = [1.0 if last and last.status == name else 0.0 for name in STATUSES]
        scores = [last.objective / 5.0 if last else 0.0, (best_score or 0.0) / 5.0, remaining_share]
        vector = np.concatenate([self.context, self.codec.one_hot(last.config if last else None),
                                 np.array(outcome + status + scores, dtype=np.float32)])
        return np.clip(vector, -LIMIT, LIMIT).astype(np.float32)


def task_context(device: str, new_tokens: int, num_requests: int, prompt_tokens: int) -> list[float]:
    """Features of the task itself: device kind and workload size."""
    return [1.0 if device == "cuda" else 0.0, _log1p(new_tokens) / 5.0, _log1p(num_requests) / 5.0,
            _log1p(prompt_tokens) / 5.0]
