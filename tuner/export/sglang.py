"""SGLang: a ``sglang.launch_server --config`` YAML (long CLI option names), the equivalent command inside."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, as_flags, gap, shard_gaps, yaml_config

# infertune's weight-only quantizations and how SGLang's nearest online setting (fp8) differs from each
WEIGHT_ONLY = {"int8-weight-only": "the same weight memory as int8",
               "int4-weight-only": "about twice int4's weight memory (an int4 AWQ/GPTQ checkpoint, loaded without "
                                   "--quantization, is the closer match)"}


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """sglang.yaml for one config."""
    out = Exported(warnings=shard_gaps("SGLang", config, context))
    options: dict[str, Any] = {"model-path": context.model,
                               "tp-size": config.get("shard_count", 1),
                               "dtype": config.get("dtype", "float32"),
                               "max-running-requests": config.get("batch_size", 1)}
    if config.get("compile", False):
        options["enable-torch-compile"] = True
    else:  # what infertune measured: no graph capture (SGLang captures CUDA graphs unless told not to)
        options["cuda-graph-backend-decode"] = "disabled"
        options["cuda-graph-backend-prefill"] = "disabled"
    quantization = config.get("quantization", "none")
    if quantization in WEIGHT_ONLY:
        options["quantization"] = "fp8"
        out.warnings.append(f"quantization={quantization}: SGLang has no torchao weight-only setting any more "
                            f"(--torchao-config was removed); written instead: the nearest one it applies to a plain "
                            f"checkpoint, --quantization fp8 (online 8-bit weights, and activations too), "
                            f"{WEIGHT_ONLY[quantization]}; measure it before relying on infertune's figures")
    elif quantization == "int8-dynamic":
        out.warnings.append(gap("quantization", quantization, "SGLang", "torch dynamic quantization is CPU-only"))
    if "attn_implementation" in config:
        out.warnings.append(gap("attn_implementation", config["attn_implementation"], "SGLang",
                                "--attention-backend chooses among SGLang's own kernels"))
    if "cache_implementation" in config:
        out.warnings.append(gap("cache_implementation", config["cache_implementation"], "SGLang",
                                "SGLang always uses its radix KV cache"))
    launch = ["python", "-m", "sglang.launch_server"]
    out.files["sglang.yaml"] = yaml_config("SGLang", context, config, "max-running-requests", out.warnings,
                                           [*launch, "--config", "sglang.yaml"], [*launch, *as_flags(options)],
                                           options)
    return out
