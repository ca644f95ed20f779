"""vLLM: a ``vllm serve --config`` YAML (keys are the long CLI option names), the equivalent command inside."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, as_flags, mapped, shard_gaps, yaml_config


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """vllm.yaml for one config, its options from the serving flag mapping."""
    engine = mapped("vllm", config, context)
    out = Exported(warnings=[*shard_gaps("vLLM", config, context), *engine.gaps])
    options: dict[str, Any] = {"model": context.model, **engine.options}
    command = ["vllm", "serve", context.model, *as_flags(options, skip=("model",))]
    out.files["vllm.yaml"] = yaml_config("vLLM", context, config, "max-num-seqs", out.warnings,
                                         ["vllm", "serve", "--config", "vllm.yaml"], command, options)
    return out
