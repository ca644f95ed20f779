"""Perturbed copies of recorded landscapes: the same ranking problem with other numbers (augmentation)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from tuner.library.landscape import KNOBS, Landscape, Outcome


def perturbed(landscape: Landscape, rng: np.random.Generator, noise: float = 0.05,
              mirror_batch: float = 0.0) -> Landscape:
    """A copy whose scores are rescaled monotonically (a random power of the metric) plus timing-like noise,
    its batch sizes mirrored with probability ``mirror_batch`` (see ``batch_mirrored``).

    Scores are ±log(metric), so scaling them by s raises every value to the power s: the spread between
    configs grows or shrinks while the order stays, and the noise (log-normal, ``noise`` relative) swaps near
    ties as a re-measurement would.
    """
    scale = float(rng.uniform(0.6, 1.6))
    outcomes = {}
    source = batch_mirrored(landscape) if mirror_batch and rng.random() < mirror_batch else landscape
    for key, outcome in source.outcomes.items():
        if outcome.rankable:
            outcomes[key] = Outcome(scale * outcome.score + float(rng.normal(0.0, noise)), True, outcome.value)
        else:
            outcomes[key] = outcome
    return replace(landscape, name=f"{landscape.name}~", outcomes=outcomes, values=dict(landscape.values))


def batch_mirrored(landscape: Landscape) -> Landscape:
    """A copy where the smallest batch size plays as the largest did, and so on: the best batch moves to the other end.

    Every landscape but one in the library is won by a large batch, so a policy learns that prior and
    regresses where a long prompt makes batch 1 best; mirrored copies (same features) teach it to look at the
    other end when the first tries disappoint.
    """
    index = KNOBS.index("batch_size")
    sizes = landscape.values["batch_size"]
    mirror = dict(zip(sizes, reversed(sizes), strict=True))
    outcomes = {}
    for key, outcome in landscape.outcomes.items():
        if key[index] in mirror:
            outcomes[(*key[:index], mirror[key[index]], *key[index + 1:])] = outcome
    return replace(landscape, outcomes=outcomes, values=dict(landscape.values))
