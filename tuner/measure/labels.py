"""Parse a free-text model answer into one label, so it can be exact-matched (torch-free, unit-testable)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

_WORD = re.compile(r"[a-z0-9]+(?:[.'-][a-z0-9]+)*")


def normalize(text: str) -> str:
    """Lower case, words only, single spaces: 'Positive.' and ' positive' read the same."""
    return " ".join(_WORD.findall(text.lower()))


def parse_label(answer: str, choices: Sequence[str] | None = None) -> str:
    """The label an answer gives: the first choice it starts with (or, failing that, names first), else its
    first line normalized. A reply that names no choice parses to itself and matches nothing."""
    first_line = next((line for line in answer.strip().splitlines() if line.strip()), "")
    text = normalize(first_line)
    if not choices:
        return text
    normalized = [normalize(choice) for choice in choices]
    for choice in normalized:
        if text == choice or text.startswith(choice + " "):
            return choice
    positions = [(position, choice) for choice in normalized
                 if (position := f" {text} ".find(f" {choice} ")) >= 0]
    return min(positions)[1] if positions else text


def labeled_share(answers: Sequence[str], items: Sequence[Mapping[str, Any]]) -> float:
    """Share of items whose parsed answer equals the item's parsed label (``task_accuracy``)."""
    hits = sum(parse_label(answer, item.get("choices")) == parse_label(item["answer"], item.get("choices"))
               for answer, item in zip(answers, items, strict=True))
    return hits / len(items)
