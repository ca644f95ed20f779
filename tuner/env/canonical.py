"""One action space for the family of transformers spaces: the union of their knob values (design §14).

A policy acts in this space whatever the task; values a task's space lacks, or its machine cannot run, are
masked. An ordered knob whose useful values differ by task (batch size: 16 is the largest on a 2-core CPU,
128 on an H100) is *ranked*: its actions name the task's own values by rank, smallest to largest, so "the
largest batch" is one action everywhere and a value no training landscape had is still reachable. The union
and the ranked knobs are saved with a policy so that it reads the same actions when it is loaded elsewhere.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from tuner.library.landscape import KNOBS
from tuner.measure.feasibility import hf_space

RANKED = ("batch_size",)  # knobs a policy names by rank among the task's values (see the module docstring)


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


def rank_slot(rank: int, count: int, slots: int) -> int:
    """The action index of the ``rank``-th smallest of ``count`` values spread over ``slots`` indices.

    The smallest value takes the first index and the largest the last, whatever ``count`` is.
    """
    if count <= 1:
        return 0
    return int(np.floor(rank * (slots - 1) / (count - 1) + 0.5))


class CanonicalCodec:
    """The canonical action space: one index per knob over the union of values (a rank for ranked knobs)."""

    def __init__(self, values: Mapping[str, list[Any]], ranked: Sequence[str] = RANKED):
        self.values = {name: list(values[name]) for name in KNOBS}
        self.ranked = tuple(name for name in ranked if name in self.values)
        self.nvec = np.array([len(self.values[name]) for name in KNOBS], dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]]).astype(np.int64)

    @property
    def size(self) -> int:
        """Length of a flat mask: every value of every knob."""
        return int(self.nvec.sum())

    def bind(self, allowed: Mapping[str, Iterable[Any]]) -> TaskCodec:
        """The actions as one task reads them: ``allowed`` lists its values per knob (an omitted knob has none)."""
        return TaskCodec(self, allowed)

    def to_json(self) -> dict[str, list[Any]]:
        """The values, for saving beside a policy (the ranked knobs are saved beside them)."""
        return dict(self.values)


class TaskCodec:
    """The canonical actions bound to one task's values: decode an action, encode a config, mask the rest."""

    def __init__(self, codec: CanonicalCodec, allowed: Mapping[str, Iterable[Any]]):
        self.nvec, self.offsets, self.size = codec.nvec, codec.offsets, codec.size
        # per knob, the task's value each action index names (None: that index names nothing here)
        self.named: dict[str, list[Any]] = {}
        for name in KNOBS:
            permitted = list(allowed.get(name, []))
            slots = len(codec.values[name])
            if name in codec.ranked:
                named: list[Any] = [None] * slots
                ordered = sorted(permitted)
                for rank, value in enumerate(ordered):
                    slot = rank_slot(rank, len(ordered), slots)
                    if named[slot] is None:  # more values than slots: the first of a slot's values keeps it
                        named[slot] = value
            else:
                named = [value if _index(permitted, value) is not None else None for value in codec.values[name]]
            self.named[name] = named

    def decode(self, action: Iterable[int]) -> tuple:
        """The config (a tuple in KNOBS order) an action names; None for a knob whose index names nothing."""
        return tuple(self.named[name][int(index)] for name, index in zip(KNOBS, action, strict=True))

    def encode(self, config: tuple) -> np.ndarray:
        """The action that names ``config`` (a tuple in KNOBS order of the task's values)."""
        return np.array([_index(self.named[name], value) for name, value in zip(KNOBS, config, strict=True)])

    def flat_indices(self, config: tuple) -> list[int]:
        """Positions of a config's values in the flat (sum of nvec) layout; a value the task lacks is skipped."""
        positions = []
        for offset, name, value in zip(self.offsets, KNOBS, config, strict=True):
            index = None if value is None else _index(self.named[name], value)
            if index is not None:
                positions.append(int(offset) + index)
        return positions

    @property
    def mask(self) -> np.ndarray:
        """Flat mask: True where an action index names one of the task's values."""
        return np.concatenate([np.array([value is not None for value in self.named[name]], dtype=bool)
                               for name in KNOBS])

    def names_every_knob(self) -> bool:
        """Whether some index names a value of every knob (not so for a custom space): else no config is named."""
        return all(any(value is not None for value in self.named[name]) for name in KNOBS)


def _index(choices: list[Any], value: Any) -> int | None:
    """Position of ``value`` in ``choices`` with types compared too (True is not 1)."""
    for index, choice in enumerate(choices):
        if choice == value and type(choice) is type(value):
            return index
    return None
