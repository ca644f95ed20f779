"""Features of a task a tuning policy can generalize over (design §14): its model, the device, its workload.

Read in the worker, which has the model's config and the device at hand; the numbers describe the task and
the machine, never the config being measured.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from tuner.measure.fingerprint import cpu_cores, cpu_isa, cpu_name
from tuner.measure.memory import MB

BYTES_PER_DTYPE = {torch.float32: 4, torch.float16: 2, torch.bfloat16: 2}


def model_features(config: Any, parameters: int) -> dict[str, Any]:
    """Shape of the model: parameters, layers, hidden size, heads, KV heads, vocabulary, bytes per parameter.

    ``bytes_per_parameter`` is that of the checkpoint as loaded before any knob applies (a GGUF file is
    converted to float32 first; random weights are built in float32).
    """
    heads = getattr(config, "num_attention_heads", None)
    stored = getattr(config, "dtype", None) or getattr(config, "torch_dtype", None)
    if isinstance(stored, str):
        stored = getattr(torch, stored, None)
    return {
        "parameters": parameters,
        "layers": getattr(config, "num_hidden_layers", None),
        "hidden": getattr(config, "hidden_size", None),
        "heads": heads,
        "kv_heads": getattr(config, "num_key_value_heads", None) or heads,
        "vocab": getattr(config, "vocab_size", None),
        "bytes_per_parameter": BYTES_PER_DTYPE.get(stored, 4),
    }


def hardware_features(device: str) -> dict[str, Any]:
    """The device: kind, name, compute units (CUDA SMs or usable CPU cores), memory in MiB, whether bfloat16
    runs natively (Ampere or later; AVX512-BF16 or AMX on a CPU) and the CPU's vector width."""
    if device.startswith("cuda"):
        properties = torch.cuda.get_device_properties(0)
        return {"device": "cuda", "device_name": properties.name, "compute_units": properties.multi_processor_count,
                "memory_mb": properties.total_memory / MB, "native_bfloat16": properties.major >= 8,
                "vector_bits": None}
    isa = cpu_isa().split()
    return {"device": "cpu", "device_name": cpu_name(), "compute_units": cpu_cores(),
            "memory_mb": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / MB,
            "native_bfloat16": any(name in isa for name in ("avx512_bf16", "amx_bf16")),
            "vector_bits": 512 if "avx512f" in isa else 256 if "avx2" in isa else 128}


def workload_features(workload: dict[str, Any], prompt_tokens: int | None) -> dict[str, Any]:
    """The request stream: tokens per prompt (padded, as measured), new tokens and requests per pass."""
    return {"prompt_tokens": prompt_tokens, "new_tokens": workload["new_tokens"],
            "requests": workload["num_requests"]}
