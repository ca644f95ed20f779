"""Plain transformers: the from_pretrained / generate kwargs infertune itself loads and measures (round trip)."""

from __future__ import annotations

import json
from typing import Any

from tuner.export.common import ExportContext, Exported, header, shard_gaps

KIND = "infertune.hf-export"
DISTRIBUTED_CONFIG = "transformers.distributed.DistributedConfig"  # from_pretrained.distributed_config is one of these


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """hf.json: kwargs for transformers 5 plus the exact infertune config they came from."""
    quantization = config.get("quantization", "none")
    shards = config.get("shard_count", 1)
    warnings = shard_gaps("transformers (DistributedConfig tp_plan)", config, context)
    document = {
        "kind": KIND,
        "comment": [line.lstrip("# ") for line in header("transformers", context, config)],
        "model": context.model,
        "from_pretrained": {"dtype": config.get("dtype", "float32"),
                            "attn_implementation": config.get("attn_implementation", "sdpa"),
                            # from_pretrained(tp_plan=) is deprecated: distributed_config=DistributedConfig(...)
                            **({"distributed_config": {"tp_plan": "auto", "tp_size": shards}} if shards > 1 else {})},
        **({"distributed_config_class": DISTRIBUTED_CONFIG} if shards > 1 else {}),
        "quantization": {"none": None, "int8-dynamic": "torch.ao.quantization.quantize_dynamic(qint8, Linear)",
                         "int8-weight-only": "torchao Int8WeightOnlyConfig",
                         "int4-weight-only": "torchao Int4WeightOnlyConfig(group_size=128)"}[quantization],
        "generate": {"cache_implementation": None if config.get("cache_implementation") == "dynamic"
                     else config.get("cache_implementation"),
                     "disable_compile": not config.get("compile", False), "do_sample": False},
        "batch_size": config.get("batch_size", 1),
        "tensor_parallel_size": shards,
        "infertune_config": config,
        **({"warnings": warnings} if warnings else {}),
    }
    return Exported(files={"hf.json": json.dumps(document, indent=2) + "\n"}, warnings=warnings)


def config_from_export(document: dict[str, Any]) -> dict[str, Any]:
    """The infertune config an hf.json export describes (so it can be measured again)."""
    if document.get("kind") != KIND:
        raise ValueError(f"not an infertune hf export (kind {document.get('kind')!r})")
    return dict(document["infertune_config"])
