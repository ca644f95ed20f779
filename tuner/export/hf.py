"""Plain transformers: the kwargs infertune loads and measures with, or ``transformers serve`` for serving configs.

For a static-batch config, the from_pretrained / generate kwargs (they round-trip into ``measure --config``); for
a serving config, the ``transformers serve --continuous-batching`` command and its engine's config.
"""

from __future__ import annotations

import json
from typing import Any

from tuner.export.common import ExportContext, Exported, batching_note, header, serving, shard_gaps
from tuner.serving.flags import command_text, engine_options, transformers_cb_fields, transformers_serve_argv
from tuner.util.errors import ConfigError

KIND = "infertune.hf-export"
DISTRIBUTED_CONFIG = "transformers.distributed.DistributedConfig"  # from_pretrained.distributed_config is one of these
SERVE_SNIPPET = "hf_serve.py"
HOST, PORT = "127.0.0.1", 8000  # written into the exported serve command (transformers serve's own default port)


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """hf.json: kwargs for transformers 5 plus the exact infertune config (and hf_serve.py for a serving config)."""
    if serving(config, context):
        return _serving_export(config, context)
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


def _serving_export(config: dict[str, Any], context: ExportContext) -> Exported:
    """hf.json (the round trip) and hf_serve.py: the serve command and the ContinuousBatchingConfig fields."""
    fields, _ = transformers_cb_fields(config)
    warnings = engine_options("transformers", config).gaps  # what the serve command alone cannot set, and why
    argv = transformers_serve_argv(context.model, config, HOST, PORT)
    from_pretrained = {key: config[key] for key in ("dtype", "attn_implementation") if key in config}
    document = {"kind": KIND, "comment": [line.lstrip("# ") for line in header("transformers serve", context, config)],
                "model": context.model,
                "serve": {"argv": argv, "continuous_batching_config": fields, "from_pretrained": from_pretrained},
                "infertune_config": config, **({"warnings": warnings} if warnings else {})}
    lines = [*header("transformers serve (continuous batching)", context, config),
             batching_note(config, context, ""), *[f"# WARNING {warning}" for warning in warnings],
             "# the server, with the flags transformers serve has:", f"#   {command_text(argv)}",
             "# every measured engine setting (the fields above without a flag included): pass "
             "continuous_batching_config() as continuous_batching_config= to model.init_continuous_batching or "
             "model.generate_batch",
             "from transformers import ContinuousBatchingConfig", "",
             f"MODEL = {context.model!r}", f"SERVE_ARGV = {argv!r}", f"FROM_PRETRAINED = {from_pretrained!r}",
             f"CB_FIELDS = {fields!r}", f"INFERTUNE_CONFIG = {config!r}", "", "",
             "def continuous_batching_config() -> ContinuousBatchingConfig:",
             '    """The continuous-batching engine settings infertune measured."""',
             "    return ContinuousBatchingConfig(**CB_FIELDS)"]
    return Exported(files={"hf.json": json.dumps(document, indent=2) + "\n", SERVE_SNIPPET: "\n".join(lines) + "\n"},
                    warnings=warnings)


def config_from_export(document: dict[str, Any]) -> dict[str, Any]:
    """The infertune config an hf.json export describes (so it can be measured again)."""
    if document.get("kind") != KIND:
        raise ValueError(f"not an infertune hf export (kind {document.get('kind')!r})")
    config = document.get("infertune_config")
    if not isinstance(config, dict):
        raise ConfigError("must be an object of knob: value", field="infertune_config", value=config)
    return dict(config)
