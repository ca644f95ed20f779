"""What the serving backend reads (``search_spaces/serving-transformers.yaml``) and what cannot run on it here."""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import Any

from tuner.space import SearchSpace
from tuner.space.loader import load_space, shipped_space

SERVING_SPACE = "serving-transformers"


@functools.cache
def serving_space() -> SearchSpace:
    """Every knob the serving backend reads, every value it knows, with the engine's defaults."""
    return load_space(shipped_space(SERVING_SPACE))


def infeasible_reason(config: Mapping[str, Any], device: str) -> str | None:
    """Why ``transformers serve`` cannot run ``config`` here, or None (decided before any server starts)."""
    if config.get("quantization", "none") != "none":
        return (f"quantization={config['quantization']}: transformers serve quantizes only with bitsandbytes "
                "(bnb-4bit, bnb-8bit); torchao weight-only is not among its options")
    if config.get("shard_count", 1) != 1:
        return f"shard_count={config['shard_count']}: transformers serve has no tensor-parallel option"
    if device == "cpu" and config.get("async_batching"):
        # the engine's thread raises "Async batching requires a device type in ('cuda', 'xpu')" and every request
        # then gets a 503 (tests/unit/serving/test_serving_knobs.py shows it)
        return "async_batching=True: transformers' continuous batching runs it only on CUDA or XPU devices"
    return None


def runnable_values(space: SearchSpace, device: str) -> dict[str, list[Any]]:
    """Per knob, the values that can run here at all (a knob left out: every value)."""
    runnable: dict[str, list[Any]] = {}
    for knob in space.knobs:
        values = [value for value in knob.choices if infeasible_reason({knob.name: value}, device) is None]
        if len(values) < len(knob.choices):
            runnable[knob.name] = values
    return runnable
