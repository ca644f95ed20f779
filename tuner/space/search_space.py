"""SearchSpace: ordered knobs plus constraints; completes, validates and checks configs."""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from tuner.space.constraints import Constraint
from tuner.space.knobs import Knob
from tuner.util.errors import ConfigError


@dataclass(frozen=True)
class SearchSpace:
    """The knobs a task tunes; the single source for every agent's view of the space."""

    id: str
    version: int
    knobs: tuple[Knob, ...]
    constraints: tuple[Constraint, ...] = ()
    source: str = field(default="<space>", compare=False)

    @property
    def label(self) -> str:
        """``id@version``, the form records carry."""
        return f"{self.id}@{self.version}"

    @property
    def names(self) -> list[str]:
        """Knob names in declaration order."""
        return [knob.name for knob in self.knobs]

    def knob(self, name: str) -> Knob:
        """The knob called ``name``; ConfigError naming the space when there is none."""
        for knob in self.knobs:
            if knob.name == name:
                return knob
        raise ConfigError(f"unknown knob; known: {', '.join(self.names)}", source=self.source, field=name)

    def defaults(self) -> dict[str, Any]:
        """The default config."""
        return {knob.name: knob.default for knob in self.knobs}

    def complete(self, partial: Mapping[str, Any], source: str = "config") -> dict[str, Any]:
        """Fill defaults, coerce strings, and reject unknown knobs or values outside the choices."""
        config = self.defaults()
        for name, value in partial.items():
            knob = self.knob(name)
            try:
                config[name] = knob.coerce(value)
            except ValueError:
                allowed = ", ".join(str(choice) for choice in knob.choices)
                raise ConfigError(f"value not allowed; choices: {allowed}", source=source, field=name,
                                  value=value) from None
        return config

    def violations(self, config: Mapping[str, Any]) -> list[str]:
        """The text of every constraint the config breaks (empty when it satisfies all)."""
        return [constraint.text for constraint in self.constraints if constraint.violated_by(config)]

    def size(self) -> int:
        """Number of configs before constraints."""
        count = 1
        for knob in self.knobs:
            count *= len(knob.choices)
        return count

    def choices_within(self, allowed: Mapping[str, Collection[Any]] | None = None) -> list[list[Any]]:
        """Each knob's choices in order, kept to the values ``allowed`` lists for it (a knob not named keeps all)."""
        allowed = allowed or {}
        return [[choice for choice in knob.choices if knob.name not in allowed or choice in allowed[knob.name]]
                for knob in self.knobs]

    def grid(self, allowed: Mapping[str, Collection[Any]] | None = None) -> Iterator[dict[str, Any]]:
        """Every config that satisfies the constraints, in index order; with ``allowed``, only its values."""
        for values in itertools.product(*self.choices_within(allowed)):
            config = dict(zip(self.names, values, strict=True))
            if not self.violations(config):
                yield config
