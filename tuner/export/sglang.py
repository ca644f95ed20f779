"""SGLang: a ``sglang.launch_server --config`` YAML (long CLI option names), the equivalent command inside."""

from __future__ import annotations

import shlex
from typing import Any

import yaml

from tuner.export.common import STATIC_BATCH_NOTE, ExportContext, Exported, gap, header


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """sglang.yaml for one config."""
    out = Exported()
    options: dict[str, Any] = {"model-path": context.model,
                               "tp-size": config.get("shard_count", 1),
                               "dtype": config.get("dtype", "float32"),
                               "max-running-requests": config.get("batch_size", 1)}
    if config.get("compile", False):
        options["enable-torch-compile"] = True
    quantization = config.get("quantization", "none")
    if quantization in ("int8-weight-only", "int4-weight-only"):
        options["torchao-config"] = "int8wo" if quantization == "int8-weight-only" else "int4wo-128"
    elif quantization == "int8-dynamic":
        out.warnings.append(gap("quantization", quantization, "SGLang", "torch dynamic quantization is CPU-only"))
    if "attn_implementation" in config:
        out.warnings.append(gap("attn_implementation", config["attn_implementation"], "SGLang",
                                "--attention-backend chooses among SGLang's own kernels"))
    if "cache_implementation" in config:
        out.warnings.append(gap("cache_implementation", config["cache_implementation"], "SGLang",
                                "SGLang always uses its radix KV cache"))
    command = ["python", "-m", "sglang.launch_server"]
    for key, value in options.items():
        command += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    lines = header("SGLang", context, config) + [f"# {STATIC_BATCH_NOTE} (max-running-requests)."]
    lines += [f"# WARNING {warning}" for warning in out.warnings]
    lines += ["# run: python -m sglang.launch_server --config sglang.yaml", f"# same as: {shlex.join(command)}",
              yaml.safe_dump(options, sort_keys=False).rstrip()]
    out.files["sglang.yaml"] = "\n".join(lines) + "\n"
    return out
