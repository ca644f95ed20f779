"""Task features as a fixed-length vector a policy reads, and the distance between two tasks.

Every feature is scaled to about [0, 1] on a log scale where sizes span orders of magnitude, so a 135M model
on 2 CPU cores and a 1.7B model on an H100 are far apart but both inside the range the policy saw. A missing
feature is 0 with its group's "known" flag at 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

# (group, feature, transform to about [0, 1])
SCALED: tuple[tuple[str, str, Any], ...] = (
    ("model", "parameters", lambda v: math.log10(v) / 12),
    ("model", "layers", lambda v: math.log2(v) / 7),
    ("model", "hidden", lambda v: math.log2(v) / 14),
    ("model", "heads", lambda v: math.log2(v) / 7),
    ("model", "kv_heads", lambda v: math.log2(v) / 7),
    ("model", "vocab", lambda v: math.log2(v) / 18),
    ("model", "bytes_per_parameter", lambda v: v / 4),
    ("hardware", "compute_units", lambda v: math.log2(v) / 10),
    ("hardware", "memory_mb", lambda v: math.log2(v) / 21),
    ("hardware", "vector_bits", lambda v: v / 512),
    ("workload", "prompt_tokens", lambda v: math.log2(v) / 14),
    ("workload", "new_tokens", lambda v: math.log2(v) / 12),
    ("workload", "requests", lambda v: math.log2(v) / 10),
)
GROUPS = ("model", "hardware", "workload")
FLAGS = ("cuda", "native_bfloat16")  # hardware booleans, each a whole unit apart
FEATURE_NAMES = ([f"{group}.{name}" for group, name, _ in SCALED] + [f"hardware.{flag}" for flag in FLAGS]
                 + [f"{group}.known" for group in GROUPS])
SIZE = len(FEATURE_NAMES)


def _scaled(features: Mapping[str, Any] | None) -> np.ndarray:
    """The scaled features (NaN where unknown), then ``cuda`` and a known flag per group."""
    features = features or {}
    vector = []
    for group, name, transform in SCALED:
        value = (features.get(group) or {}).get(name)
        usable = isinstance(value, int | float) and not isinstance(value, bool) and value > 0
        vector.append(float(transform(value)) if usable else math.nan)
    hardware = features.get("hardware") or {}
    device, native = hardware.get("device"), hardware.get("native_bfloat16")
    vector.append(math.nan if device is None else float(device == "cuda"))
    vector.append(math.nan if not isinstance(native, bool) else float(native))
    vector += [1.0 if features.get(group) else 0.0 for group in GROUPS]
    return np.clip(np.array(vector, dtype=np.float32), -2.0, 2.0)


def feature_vector(features: Mapping[str, Any] | None) -> np.ndarray:
    """The policy's view of a task: scaled features (0 where unknown), ``cuda``, and a known flag per group."""
    return np.nan_to_num(_scaled(features), nan=0.0)


def distance(first: Mapping[str, Any] | None, second: Mapping[str, Any] | None) -> float:
    """Euclidean distance between two tasks' scaled features, over the features both know.

    Every feature weighs the same: the hardware kind (CPU vs CUDA) moves the optimum most, and it is a whole
    unit apart, more than a size feature differs between any two models on its log scale.
    """
    a, b = _scaled(first)[: len(SCALED) + len(FLAGS)], _scaled(second)[: len(SCALED) + len(FLAGS)]
    both = ~np.isnan(a) & ~np.isnan(b)
    return float(np.sqrt(np.sum((a[both] - b[both]) ** 2)))
