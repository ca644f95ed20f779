"""Perturbed copies of recorded landscapes: the same ranking problem with other numbers (augmentation)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tuner.library.landscape import Landscape, Outcome


def perturbed(landscape: Landscape, rng: np.random.Generator, noise: float = 0.05) -> Landscape:
    """A copy whose scores are rescaled monotonically (a random power of the metric) plus timing-like noise.

    Scores are ±log(metric), so scaling them by s raises every value to the power s: the spread between
    configs grows or shrinks while the order stays, and the noise (log-normal, ``noise`` relative) swaps near
    ties as a re-measurement would.
    """
    scale = float(rng.uniform(0.6, 1.6))
    outcomes = {}
    for key, outcome in landscape.outcomes.items():
        if outcome.rankable:
            outcomes[key] = Outcome(scale * outcome.score + float(rng.normal(0.0, noise)), True, outcome.value)
        else:
            outcomes[key] = outcome
    return replace(landscape, name=f"{landscape.name}~", outcomes=outcomes, values=dict(landscape.values))
