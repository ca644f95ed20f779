"""A small, safe rule syntax for knob constraints: ``<condition> requires <condition>``.

A condition is one or more terms joined by ``and``; a term is ``knob == value``, ``knob != value``,
``knob in [a, b]``, ``knob not in [a, b]``, or a bare bool knob name (``compile``, ``not compile``).
Nothing is evaluated as Python.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_TERM = re.compile(
    r"^\s*(?P<neg>not\s+)?(?P<knob>[A-Za-z_][A-Za-z0-9_]*)\s*"
    r"(?:(?P<op>==|!=|not\s+in|in)\s*(?P<value>.+?))?\s*$"
)


@dataclass(frozen=True)
class Term:
    """One comparison of a knob against a set of values."""

    knob: str
    values: tuple[Any, ...]
    negated: bool

    def holds(self, config: Mapping[str, Any]) -> bool:
        """Whether the config satisfies this term."""
        inside = any(config.get(self.knob) == value and type(config.get(self.knob)) is type(value)
                     for value in self.values)
        return inside != self.negated

    def __str__(self) -> str:
        if len(self.values) == 1:
            return f"{self.knob} {'!=' if self.negated else '=='} {_show(self.values[0])}"
        shown = ", ".join(_show(value) for value in self.values)
        return f"{self.knob} {'not in' if self.negated else 'in'} [{shown}]"


@dataclass(frozen=True)
class Constraint:
    """``when`` terms all holding requires ``then`` terms all holding."""

    text: str
    when: tuple[Term, ...]
    then: tuple[Term, ...]

    def violated_by(self, config: Mapping[str, Any]) -> bool:
        """True when the config meets the condition but not the requirement."""
        return all(term.holds(config) for term in self.when) and not all(term.holds(config) for term in self.then)

    @property
    def knobs(self) -> set[str]:
        """The knobs this constraint reads."""
        return {term.knob for term in (*self.when, *self.then)}


def _show(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _parse_scalar(text: str) -> Any:
    text = text.strip().strip("'\"")
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    try:
        return int(text)
    except ValueError:
        return text


def _parse_term(text: str) -> Term:
    match = _TERM.match(text)
    if not match:
        raise ValueError(f"cannot read condition {text.strip()!r}")
    knob, op, raw = match["knob"], match["op"], match["value"]
    if op is None:
        return Term(knob, (True,), negated=bool(match["neg"]))
    if match["neg"]:
        raise ValueError(f"'not' goes before a bare bool knob only, not in {text.strip()!r}")
    op = " ".join(op.split())
    if op in ("in", "not in"):
        raw = raw.strip()
        if not (raw.startswith("[") and raw.endswith("]")):
            raise ValueError(f"'{op}' needs a [list] in {text.strip()!r}")
        values = tuple(_parse_scalar(item) for item in raw[1:-1].split(",") if item.strip())
    else:
        values = (_parse_scalar(raw),)
    return Term(knob, values, negated=op in ("!=", "not in"))


def _parse_condition(text: str) -> tuple[Term, ...]:
    return tuple(_parse_term(part) for part in re.split(r"\s+and\s+", text.strip()))


def parse_constraint(text: str) -> Constraint:
    """Parse ``<condition> requires <condition>``; ValueError with the reason when it does not parse."""
    parts = re.split(r"\s+requires\s+", text.strip())
    if len(parts) != 2:
        raise ValueError("a constraint reads '<condition> requires <condition>'")
    return Constraint(text.strip(), _parse_condition(parts[0]), _parse_condition(parts[1]))
