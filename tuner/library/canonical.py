"""One action space for the family of transformers spaces: the union of their knob values (DESIGN §14).

A policy acts in this space whatever the task; values a task's space lacks, or its machine cannot run, are
masked. The union is saved with a policy so that it reads the same actions when it is loaded elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np

from tuner.library.landscape import KNOBS
from tuner.measure.feasibility import hf_space


def canonical_values(extra: Iterable[Mapping[str, Iterable[Any]]] = ()) -> dict[str, list[Any]]:
    """Per knob, every value of the backend's full space and of ``extra`` (e.g. each landscape's values)."""
    values: dict[str, list[Any]] = {knob.name: list(knob.choices) for knob in hf_space().knobs}
    for more in extra:
        for name, choices in more.items():
            for choice in choices:
                if choice not in values.setdefault(name, []):
                    values[name].append(choice)
    for name, choices in values.items():
        if all(isinstance(choice, int) and not isinstance(choice, bool) for choice in choices):
            values[name] = sorted(choices)
    return {name: values[name] for name in KNOBS}


class CanonicalCodec:
    """Actions (one index per knob) in the canonical space, and masks for one task's values."""

    def __init__(self, values: Mapping[str, list[Any]]):
        self.values = {name: list(values[name]) for name in KNOBS}
        self.nvec = np.array([len(self.values[name]) for name in KNOBS], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]]).astype(np.int64)

    @property
    def size(self) -> int:
        """Length of a flat mask: every value of every knob."""
        return int(self.nvec.sum())

    def decode(self, action: Iterable[int]) -> tuple:
        """The config (a tuple in KNOBS order) an action names."""
        return tuple(self.values[name][int(index)] for name, index in zip(KNOBS, action, strict=True))

    def flat_indices(self, config: tuple) -> list[int]:
        """Positions of a config's values in the flat (sum of nvec) layout; a value outside the space is skipped."""
        positions = []
        for offset, name, value in zip(self.offsets, KNOBS, config, strict=True):
            index = _index(self.values[name], value)
            if index is not None:
                positions.append(int(offset) + index)
        return positions

    def mask(self, allowed: Mapping[str, Iterable[Any]]) -> np.ndarray:
        """Flat mask: True for the values ``allowed`` lists per knob (a knob it omits has every value masked)."""
        parts = []
        for name in KNOBS:
            permitted = list(allowed.get(name, []))
            parts.append([_index(permitted, value) is not None for value in self.values[name]])
        return np.concatenate([np.array(part, dtype=bool) for part in parts])

    def to_json(self) -> dict[str, list[Any]]:
        """The values, for saving beside a policy."""
        return dict(self.values)


def _index(choices: list[Any], value: Any) -> int | None:
    """Position of ``value`` in ``choices`` with types compared too (True is not 1)."""
    for index, choice in enumerate(choices):
        if choice == value and type(choice) is type(value):
            return index
    return None
