"""Text Generation Inference (launcher, maintenance mode): launcher arguments and environment variables."""

from __future__ import annotations

import shlex
from typing import Any

from tuner.export.common import STATIC_BATCH_NOTE, ExportContext, Exported, gap, header, shard_gaps

QUANTIZE = {"int8-weight-only": "eetq"}  # TGI's int8 weight-only kernel


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """tgi.sh: the launcher's environment variables, the same settings as flags, and the launch."""
    out = Exported(warnings=shard_gaps("TGI", config, context))
    arguments: dict[str, Any] = {"model-id": context.model, "num-shard": config.get("shard_count", 1),
                                 "max-concurrent-requests": config.get("batch_size", 1),
                                 "max-batch-size": config.get("batch_size", 1)}
    quantization = config.get("quantization", "none")
    dtype = config.get("dtype", "float32")
    if quantization in QUANTIZE:
        arguments["quantize"] = QUANTIZE[quantization]
    elif quantization != "none":
        out.warnings.append(gap("quantization", quantization, "TGI", "no matching --quantize method"))
    if "quantize" in arguments:
        out.warnings.append(f"dtype={dtype}: TGI does not take --dtype together with --quantize; not applied")
    elif dtype in ("float16", "bfloat16"):
        arguments["dtype"] = dtype
    else:
        out.warnings.append(gap("dtype", dtype, "TGI", "--dtype accepts float16 or bfloat16 only"))
    if not config.get("compile", False):
        arguments["cuda-graphs"] = 0  # what infertune measured: no graph capture
    for knob, why in (("attn_implementation", "TGI picks flash/paged attention itself"),
                      ("cache_implementation", "TGI always uses its paged KV cache")):
        if knob in config:
            out.warnings.append(gap(knob, config[knob], "TGI", why))
    notes = [*header("TGI", context, config), f"# {STATIC_BATCH_NOTE} (max-concurrent-requests, max-batch-size).",
             *[f"# WARNING {warning}" for warning in out.warnings]]
    command = ["text-generation-launcher"]
    for key, value in arguments.items():
        command += [f"--{key}", str(value)]
    exports = [f"export {key.upper().replace('-', '_')}={shlex.quote(str(value))}" for key, value in arguments.items()]
    out.files["tgi.sh"] = "\n".join(["#!/usr/bin/env bash", *notes,
                                       "# the launcher reads these variables; the same as flags:",
                                       f"#   {shlex.join(command)}", *exports,
                                       'exec text-generation-launcher "$@"']) + "\n"
    return out
