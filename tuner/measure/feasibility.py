"""What the transformers backend can run here: its knobs, their defaults, the rules that rule a config out.

The knobs and defaults come from its search space; the rules make a config infeasible on this machine before it
is measured, and the same rules mask actions, prune grids and refuse a config in the worker.
"""

from __future__ import annotations

import functools
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from tuner.measure.fingerprint import device_count
from tuner.space import SearchSpace
from tuner.space.loader import load_space, shipped_space

HF_SPACE = "hf-transformers"  # every knob the backend reads, with its default: search_spaces/hf-transformers.yaml


@functools.cache
def hf_space() -> SearchSpace:
    """The backend's full search space: every knob it reads, every value it knows, and their constraints."""
    return load_space(shipped_space(HF_SPACE))


def knob_defaults() -> dict[str, Any]:
    """The value the backend uses for a knob a config or a narrower space leaves out."""
    return hf_space().defaults()


@dataclass(frozen=True)
class Machine:
    """The facts about the measuring process that decide what can run at all."""

    device: str  # cpu or cuda
    devices: int  # what a tensor-parallel model can span: visible GPUs, or usable CPU cores
    has_torchao: bool

    @classmethod
    def here(cls, device: str, env: Mapping[str, str] | None = None) -> Machine:
        """This machine as a process with environment ``env`` sees it (a worker limited to one GPU sees one)."""
        return cls(device, device_count(device, env), importlib.util.find_spec("torchao") is not None)


def value_rule(knob: str, value: Any, machine: Machine) -> str | None:
    """Why ``knob = value`` cannot run on ``machine`` whatever the other knobs are; None when it can."""
    if knob == "shard_count" and value > machine.devices:
        unit = "GPUs" if machine.device == "cuda" else "CPU cores"
        return f"shard_count {value} exceeds the {machine.devices} {unit} visible here"
    if knob != "quantization":
        return None
    if value == "int8-dynamic" and machine.device != "cpu":
        return "int8-dynamic (torch dynamic quantization) runs on CPU only"
    if value in ("int8-weight-only", "int4-weight-only") and not machine.has_torchao:
        return f"{value} needs torchao, which is not installed (pip install torchao)"
    if value == "int4-weight-only" and machine.device != "cuda":
        return "int4-weight-only (torchao) kernels need CUDA"
    return None


def why_infeasible(config: Mapping[str, Any], machine: Machine) -> str | None:
    """The first reason ``config`` cannot run on ``machine``: a value rule, or a constraint of the backend's space."""
    for knob, value in config.items():
        reason = value_rule(knob, value, machine)
        if reason is not None:
            return reason
    broken = hf_space().violations({**knob_defaults(), **config})
    return f"the backend requires: {broken[0]}" if broken else None


def runnable_values(space: SearchSpace, machine: Machine) -> dict[str, list[Any]]:
    """Per knob of ``space``, the values that can run on ``machine`` (others are infeasible)."""
    return {knob.name: [value for value in knob.choices if value_rule(knob.name, value, machine) is None]
            for knob in space.knobs}
