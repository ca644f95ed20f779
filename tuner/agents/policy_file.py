"""A pretrained policy on disk: the network (.zip) and, beside it, its canonical values and provenance (.json)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sb3_contrib import MaskablePPO

from tuner.env.canonical import CanonicalCodec

POLICY_FORMAT = 1


@dataclass
class PretrainedPolicy:
    """A pretrained policy and what it needs to act: its canonical values and feature layout."""

    model: MaskablePPO
    codec: CanonicalCodec
    meta: dict[str, Any] = field(default_factory=dict)


def save_policy(policy: PretrainedPolicy, path: Path) -> None:
    """The model as ``path`` (.zip) and its canonical values and provenance beside it (.json)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    policy.model.save(path)
    path.with_suffix(".json").write_text(json.dumps(policy.meta, indent=1))


def load_policy(path: Path) -> PretrainedPolicy:
    """A policy saved by ``save_policy``."""
    meta = json.loads(Path(path).with_suffix(".json").read_text())
    # a policy saved before ranked knobs existed names every value as itself
    codec = CanonicalCodec(meta["canonical"], meta.get("ranked", ()))
    return PretrainedPolicy(MaskablePPO.load(path, device="cpu"), codec, meta)
