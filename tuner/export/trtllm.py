"""TensorRT-LLM (default ``pytorch`` backend): a YAML for ``trtllm-serve --config``, existing keys only."""

from __future__ import annotations

from typing import Any

from tuner.export.common import ExportContext, Exported, mapped, shard_gaps, yaml_config
from tuner.serving.flags import TRTLLM_CONFIG


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """trtllm.yaml for one config (trtllm-serve rejects unknown keys, so only existing ones are written)."""
    engine = mapped("trtllm", config, context)
    out = Exported(warnings=[*shard_gaps("TensorRT-LLM", config, context), *engine.gaps])
    out.files[TRTLLM_CONFIG] = yaml_config("TensorRT-LLM", context, config, "max_batch_size", out.warnings,
                                           ["trtllm-serve", context.model, "--config", TRTLLM_CONFIG], None,
                                           engine.options)
    return out
