"""Warm starts from the library: the best configs of the landscapes most like a new task (design §14).

Similarity is the distance between task features (``tuner.library.features.distance``): the same hardware
kind first, then model size and shape, then workload, each on a log scale. The nearest landscapes' best
configs are what an engineer would try first on a new model of the same kind, and the same knowledge the
pretrained policy has, so Optuna and PPO are compared on equal terms.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from tuner.library.features import distance
from tuner.library.landscape import Landscape

NEAREST = 3  # landscapes consulted


def nearest(features: Mapping[str, Any] | None, library: Sequence[Landscape], count: int = NEAREST) -> list[Landscape]:
    """The ``count`` landscapes whose features are closest to ``features`` (nearest first)."""
    return sorted(library, key=lambda landscape: distance(features, landscape.features))[:count]


def warm_start_configs(features: Mapping[str, Any] | None, library: Sequence[Landscape],
                       count: int = NEAREST) -> list[dict[str, Any]]:
    """The best config of each of the nearest landscapes, nearest first, without repeats."""
    configs: list[dict[str, Any]] = []
    for landscape in nearest(features, library, count):
        for config in landscape.best_configs(1):
            if config not in configs:
                configs.append(config)
    return configs
