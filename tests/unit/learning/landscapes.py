"""Synthetic landscapes with planted optima, for the learning tests (recorded ones are the benchmark's)."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from tuner.library.landscape import KNOBS, Landscape, landscape_from_records
from tuner.objective import ObjectiveSpec
from tuner.space.loader import load_space, shipped_space

CPU = {"model": {"parameters": 135_000_000, "layers": 30, "hidden": 576, "heads": 9, "kv_heads": 3, "vocab": 49152,
                 "bytes_per_parameter": 4},
       "hardware": {"device": "cpu", "device_name": "test CPU", "compute_units": 2, "memory_mb": 24_000,
                    "native_bfloat16": False, "vector_bits": 256},
       "workload": {"prompt_tokens": 64, "new_tokens": 16, "requests": 8}}
GPU = {"model": {"parameters": 1_700_000_000, "layers": 24, "hidden": 2048, "heads": 32, "kv_heads": 32,
                 "vocab": 32000, "bytes_per_parameter": 4},
       "hardware": {"device": "cuda", "device_name": "test GPU", "compute_units": 132, "memory_mb": 81_559,
                    "native_bfloat16": True, "vector_bits": None},
       "workload": {"prompt_tokens": 48, "new_tokens": 64, "requests": 64}}


def planted_rows(name: str, optimum: dict[str, Any], features: dict[str, Any]) -> list[dict[str, Any]]:
    """Every config of the library space; throughput falls by a factor 1.6 per knob that differs from ``optimum``."""
    rows = []
    for trial, config in enumerate(load_space(shipped_space("library")).grid()):
        misses = sum(config[knob] != optimum[knob] for knob in KNOBS)
        rows.append({"schema": 1, "run": name, "task": name, "space": "library@1", "trial": trial, "agent": "grid",
                     "config": config, "status": "ok", "error": None,
                     "metrics": {"tokens_per_s": 1000.0 / 1.6 ** misses}, "objective": None, "feasible": True,
                     "cached": False, "fingerprint": {"device": features["hardware"]["device"]},
                     "started_at": "2026-11-29T00:00:00Z", "duration_s": 0.0, "features": features})
    return rows


PLANTED_CPU = {"batch_size": 16, "dtype": "float32", "quantization": "int8-dynamic", "attn_implementation": "sdpa",
               "cache_implementation": "static", "compile": True, "shard_count": 1}
PLANTED_GPU = {"batch_size": 1, "dtype": "bfloat16", "quantization": "none", "attn_implementation": "eager",
               "cache_implementation": "dynamic", "compile": False, "shard_count": 2}


def planted(name: str, optimum: dict[str, Any], features: dict[str, Any]) -> Landscape:
    """A landscape object with its optimum at ``optimum``."""
    return landscape_from_records(name, planted_rows(name, optimum, features), ObjectiveSpec())


def write_landscape(folder: Path, name: str, optimum: dict[str, Any], features: dict[str, Any]) -> Path:
    """A library entry (task .yaml + .jsonl) and a replay task for it; returns the replay task's path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = planted_rows(name, optimum, features)
    (folder / f"{name}.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))
    (folder / f"{name}.yaml").write_text(f"id: {name}\nobjective: {{maximize: tokens_per_s}}\n")
    replay = folder.parent / f"{name}-replay.yaml"
    replay.write_text(f"id: {name}-replay\nbackend: replay\nrecording: {folder.name}/{name}.jsonl\n"
                      f"search_space: library\nobjective: {{maximize: tokens_per_s}}\nbudget: 8\n")
    return replay


def quality(landscape: Landscape, config: dict[str, Any]) -> float:
    """Value ratio to the optimum (as the benchmark scores it)."""
    return landscape.quality(tuple(config[knob] for knob in KNOBS)) if not math.isnan(landscape.optimum_score) else 0
