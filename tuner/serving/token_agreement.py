"""Accuracy over HTTP: how far a config's greedy completions agree, token by token, with the reference's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def prefix_agreement(candidate: Sequence[int], reference: Sequence[int]) -> float:
    """Share of the reference's tokens the candidate reproduces before the first difference (greedy decoding
    diverges for good after one different token, so later positions say nothing about the config)."""
    if not reference:
        return 1.0 if not candidate else 0.0
    same = 0
    for ours, theirs in zip(candidate, reference, strict=False):
        if ours != theirs:
            break
        same += 1
    return same / len(reference)


def token_agreement(tokenizer: Any, candidates: Sequence[str], references: Sequence[str]) -> float:
    """Mean prefix agreement over the eval prompts' completions (texts tokenized without special tokens)."""
    scores = [prefix_agreement(tokenizer.encode(ours, add_special_tokens=False),
                               tokenizer.encode(theirs, add_special_tokens=False))
              for ours, theirs in zip(candidates, references, strict=True)]
    return sum(scores) / len(scores)
