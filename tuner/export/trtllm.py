"""TensorRT-LLM: an LLM-API YAML for ``trtllm-serve --config`` with existing keys only, the command inside."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, gap, shard_gaps, yaml_config


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """trtllm.yaml for one config (trtllm-serve rejects unknown keys, so only existing ones are written)."""
    out = Exported(warnings=shard_gaps("TensorRT-LLM", config, context))
    options: dict[str, Any] = {"tensor_parallel_size": config.get("shard_count", 1),
                               "dtype": config.get("dtype", "float32"),
                               "max_batch_size": config.get("batch_size", 1),
                               "kv_cache_config": {"free_gpu_memory_fraction": 0.9}}
    quantization = config.get("quantization", "none")
    if quantization != "none":
        out.warnings.append(gap("quantization", quantization, "TensorRT-LLM",
                                "it serves checkpoints quantized beforehand (e.g. with ModelOpt)"))
    for knob, why in (("attn_implementation", "TensorRT-LLM uses its own attention plugin"),
                      ("cache_implementation", "TensorRT-LLM always uses its paged KV cache"),
                      ("compile", "the engine is compiled ahead of time, whatever this knob says")):
        if knob in config:
            out.warnings.append(gap(knob, config[knob], "TensorRT-LLM", why))
    out.files["trtllm.yaml"] = yaml_config("TensorRT-LLM", context, config, "max_batch_size", out.warnings,
                                           ["trtllm-serve", context.model, "--config", "trtllm.yaml"], None, options)
    return out
