"""vLLM: a ``vllm serve --config`` YAML (keys are the long CLI option names), the equivalent command inside."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, as_flags, gap, shard_gaps, yaml_config

DTYPES = {"float32": "float32", "bfloat16": "bfloat16", "float16": "float16"}


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """vllm.yaml for one config."""
    out = Exported(warnings=shard_gaps("vLLM", config, context))
    options: dict[str, Any] = {"model": context.model,
                               "tensor-parallel-size": config.get("shard_count", 1),
                               "dtype": DTYPES[config.get("dtype", "float32")],
                               "max-num-seqs": config.get("batch_size", 1)}
    if not config.get("compile", False):
        options["enforce-eager"] = True  # no torch.compile, no CUDA graphs: what infertune measured
    quantization = config.get("quantization", "none")
    if quantization in ("int8-weight-only", "int4-weight-only"):
        options["quantization"] = "torchao"
        out.warnings.append(f"quantization={quantization}: vLLM's torchao method loads a checkpoint already "
                            "quantized with torchao; save the weights quantized that way first")
    elif quantization == "int8-dynamic":
        out.warnings.append(gap("quantization", quantization, "vLLM", "torch dynamic quantization is CPU-only"))
    attention = config.get("attn_implementation")
    if attention is not None:
        out.warnings.append(gap("attn_implementation", attention, "vLLM",
                                "vLLM picks its own paged-attention backend"))
    cache = config.get("cache_implementation")
    if cache is not None:
        out.warnings.append(gap("cache_implementation", cache, "vLLM", "vLLM always uses its paged KV cache"))
    command = ["vllm", "serve", context.model, *as_flags(options, skip=("model",))]
    out.files["vllm.yaml"] = yaml_config("vLLM", context, config, "max-num-seqs", out.warnings,
                                         ["vllm", "serve", "--config", "vllm.yaml"], command, options)
    return out
