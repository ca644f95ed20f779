"""TensorRT-LLM (default ``pytorch`` backend): a YAML for ``trtllm-serve --config``, existing keys only."""

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
    if config.get("compile", False):  # the default (pytorch) backend: torch.compile, CUDA graphs stay on
        options["torch_compile_config"] = {"enable_fullgraph": True}
    else:  # what infertune measured: no torch.compile (off by default there) and no graph capture
        options["cuda_graph_config"] = None
    for knob, why in (("attn_implementation", "TensorRT-LLM uses its own attention backend"),
                      ("cache_implementation", "TensorRT-LLM always uses its paged KV cache")):
        if knob in config:
            out.warnings.append(gap(knob, config[knob], "TensorRT-LLM", why))
    out.files["trtllm.yaml"] = yaml_config("TensorRT-LLM", context, config, "max_batch_size", out.warnings,
                                           ["trtllm-serve", context.model, "--config", "trtllm.yaml"], None, options)
    return out
