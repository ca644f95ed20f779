"""Map configs to MultiDiscrete actions and back, and mask knob values this machine cannot run."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tuner.space import SearchSpace


class ActionCodec:
    """One action index per knob, in the space's knob order and choice order."""

    def __init__(self, space: SearchSpace):
        self.space = space
        self.nvec = np.array([len(knob.choices) for knob in space.knobs], dtype=np.int64)

    def decode(self, action: Iterable[int]) -> dict[str, Any]:
        """The config an action names."""
        return {knob.name: knob.choices[int(index)] for knob, index in zip(self.space.knobs, action, strict=True)}

    def encode(self, config: Mapping[str, Any]) -> np.ndarray:
        """The action that names ``config``."""
        return np.array([knob.index(config[knob.name]) for knob in self.space.knobs], dtype=np.int64)

    def one_hot(self, config: Mapping[str, Any] | None) -> np.ndarray:
        """Concatenated one-hot encoding (all zeros for None), length sum(nvec)."""
        vector = np.zeros(int(self.nvec.sum()), dtype=np.float32)
        if config is not None:
            offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
            vector[offsets + self.encode(config)] = 1.0
        return vector


def value_mask(space: SearchSpace, allowed: Mapping[str, Iterable[Any]] | None) -> np.ndarray:
    """Flat boolean mask, length sum(nvec): False for knob values that cannot run here."""
    parts = []
    for knob in space.knobs:
        permitted = None if allowed is None or knob.name not in allowed else list(allowed[knob.name])
        parts.append([permitted is None or any(choice == value and type(choice) is type(value)
                                               for value in permitted) for choice in knob.choices])
    return np.concatenate([np.array(part, dtype=bool) for part in parts])
