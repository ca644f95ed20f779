"""SGLang: a ``sglang.launch_server --config`` YAML (long CLI option names), the equivalent command inside."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, as_flags, mapped, shard_gaps, yaml_config


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """sglang.yaml for one config, its options from the serving flag mapping."""
    engine = mapped("sglang", config, context)
    out = Exported(warnings=[*shard_gaps("SGLang", config, context), *engine.gaps])
    options: dict[str, Any] = {"model-path": context.model, **engine.options}
    launch = ["python", "-m", "sglang.launch_server"]
    out.files["sglang.yaml"] = yaml_config("SGLang", context, config, "max-running-requests", out.warnings,
                                           [*launch, "--config", "sglang.yaml"], [*launch, *as_flags(options)],
                                           options)
    return out
