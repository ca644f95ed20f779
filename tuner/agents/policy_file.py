"""A pretrained policy on disk: the network (.zip) and, beside it, its canonical values and provenance (.json)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tuner.env.canonical import CanonicalCodec
from tuner.library.landscape import KNOBS

if TYPE_CHECKING:
    from sb3_contrib import MaskablePPO

POLICY_FORMAT = 1
DEFAULT_POLICY = Path(__file__).resolve().parents[2] / "policies" / "default.zip"  # the shipped one, trained on all


@dataclass
class PretrainedPolicy:
    """A pretrained policy and what it needs to act: its canonical values and feature layout."""

    model: MaskablePPO
    codec: CanonicalCodec
    meta: dict[str, Any] = field(default_factory=dict)


def is_pretrained(path: str | Path) -> bool:
    """Whether ``path`` is a pretrained policy: saved by ``infertune pretrain`` with its canonical values beside it."""
    meta = Path(path).with_suffix(".json")
    try:
        loaded = json.loads(meta.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(loaded, dict) and isinstance(loaded.get("canonical"), dict)


def unknown_knobs(knob_names: Iterable[str]) -> list[str]:
    """The knobs a pretrained policy never learned: the library's landscapes all tune the static-batch ``KNOBS``."""
    return [name for name in knob_names if name not in KNOBS]


def save_policy(policy: PretrainedPolicy, path: Path) -> None:
    """The model as ``path`` (.zip) and its canonical values and provenance beside it (.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    policy.model.save(path)
    path.with_suffix(".json").write_text(json.dumps(policy.meta, indent=1))


def load_policy(path: Path) -> PretrainedPolicy:
    """A policy saved by ``save_policy``."""
    from sb3_contrib import MaskablePPO  # here: deciding which agent runs needs no torch

    meta = json.loads(Path(path).with_suffix(".json").read_text())
    # a policy saved before ranked knobs existed names every value as itself
    codec = CanonicalCodec(meta["canonical"], meta.get("ranked", ()))
    return PretrainedPolicy(MaskablePPO.load(path, device="cpu"), codec, meta)
