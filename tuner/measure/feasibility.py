"""Knob values this machine can run at all, known before measuring (used to mask actions and prune grids)."""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping
from typing import Any

from tuner.measure.fingerprint import device_count
from tuner.space import SearchSpace


def runnable_values(space: SearchSpace, device: str, env: Mapping[str, str] | None = None) -> dict[str, list[Any]]:
    """Per knob, the values that can run on ``device`` with the installed libraries (others are infeasible).

    ``env`` is the measuring process's environment: a worker limited to one GPU cannot shard over two.
    """
    allowed: dict[str, list[Any]] = {}
    for knob in space.knobs:
        if knob.name == "shard_count":
            available = device_count(device, env)
            allowed[knob.name] = [value for value in knob.choices if value <= available]
        elif knob.name == "quantization":
            has_torchao = importlib.util.find_spec("torchao") is not None
            allowed[knob.name] = [value for value in knob.choices if _quantization_runs(value, device, has_torchao)]
    return allowed


def _quantization_runs(value: str, device: str, has_torchao: bool) -> bool:
    if value == "int8-dynamic":
        return device == "cpu"
    if value == "int8-weight-only":
        return has_torchao
    if value == "int4-weight-only":
        return has_torchao and device == "cuda"
    return True
