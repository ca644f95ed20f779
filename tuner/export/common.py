"""What every exporter shares: the context of a measured config, the file header, the batching note."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field
from typing import Any

import yaml

from tuner.serving.flags import EngineOptions, engine_options, is_serving_config, option_argv
from tuner.util.formatting import shown
from tuner.util.numbers import is_number

STATIC_BATCH_NOTE = ("infertune measured batch_size as a static batch (all sequences start and stop together); "
                     "this stack batches continuously, so the value below caps concurrent sequences instead")
SERVING_NOTE = ("infertune measured this config under continuous batching (requests arriving while others run), so "
                "no static-batch translation applies: the values below are its serving knobs under this stack's names")
HEADER_METRICS = {"tokens_per_s": ".1f", "latency_p95_s": ".3f", "ttft_s": ".3f", "tpot_s": ".4f", "top1_agree": ".3f",
                  "kl": ".3g", "peak_mem_mb": ".0f"}  # shown in every file's header, n/a where not measured
SERVING_METRICS = {"goodput_rps": ".2f", "requests_per_s": ".2f", "ttft_p95_s": ".3f",
                   "itl_p95_s": ".4f"}  # shown too for a serving config (or when measured), n/a where not measured
# what infertune's static measurement used for a knob its config leaves out (a serving config keeps the engine's)
STATIC_DEFAULTS = {"shard_count": 1, "dtype": "float32", "batch_size": 1, "compile": False, "quantization": "none"}


@dataclass(frozen=True)
class ExportContext:
    """Where a config came from: task, model, the measured metrics, the run that measured it, its load and SLOs."""

    task: str
    model: str  # what the serving stack loads: a hub id or a local folder
    metrics: dict[str, Any]
    run: str = ""
    trial: int | None = None
    mlflow_run_id: str | None = None
    model_note: str = ""
    attention_heads: int | None = None  # known: warn when a shard count does not divide it
    load: dict[str, Any] | None = None  # the request stream a serving config was measured at (process, rate, ...)
    slo: dict[str, Any] | None = None  # its latency objectives, e.g. {"ttft_p95_s": 2.0, "itl_p95_s": 0.2}


@dataclass
class Exported:
    """Files (name → text) and the knobs the stack has no equivalent for (each also written in the file)."""

    files: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def serving(config: dict[str, Any], context: ExportContext) -> bool:
    """Whether the config was measured under continuous batching (it holds serving knobs, or a load was recorded)."""
    return context.load is not None or is_serving_config(config)


def mapped(engine: str, config: dict[str, Any], context: ExportContext) -> EngineOptions:
    """The engine's options from the one flag mapping; a static config gets the defaults it was measured with."""
    return engine_options(engine, dict(config) if serving(config, context) else {**STATIC_DEFAULTS, **config})


def header(stack: str, context: ExportContext, config: dict[str, Any], comment: str = "#") -> list[str]:
    """Comment lines that open every exported file: task, model, measured metrics (load, SLOs), MLflow run."""
    figures = ", ".join(f"{name} {shown(context.metrics.get(name), spec)}" for name, spec in HEADER_METRICS.items())
    under_load = serving(config, context) or any(name in context.metrics for name in SERVING_METRICS)
    lines = [f"infertune export for {stack}",
             f"task: {context.task}   model: {context.model}",
             "measured config: " + " ".join(f"{key}={value}" for key, value in config.items())]
    if not under_load or any(is_number(context.metrics.get(name)) for name in HEADER_METRICS):
        # a serving record has no static-batch figures: a line of n/a would only say so
        lines.append(f"measured: {figures}")
    if under_load:
        lines.append("measured under load: " + ", ".join(f"{name} {shown(context.metrics.get(name), spec)}"
                                                         for name, spec in SERVING_METRICS.items()))
        load = ", ".join(f"{key} {value}" for key, value in (context.load or {}).items()) or "n/a"
        slo = ", ".join(f"{key} <= {value}" for key, value in (context.slo or {}).items()) or "n/a"
        lines.append(f"load measured at: {load}   SLOs: {slo}")
    lines.append(f"infertune run: {context.run or '-'} trial {context.trial if context.trial is not None else '-'}"
                 f"   MLflow run: {context.mlflow_run_id or '-'}")
    if context.model_note:
        lines.append(context.model_note)
    return [f"{comment} {line}" for line in lines]


def batching_note(config: dict[str, Any], context: ExportContext, options: str, comment: str = "#") -> str:
    """The static-batch gap (naming the stack's options), or, for a serving config, that there is none."""
    return f"{comment} {SERVING_NOTE}." if serving(config, context) else f"{comment} {STATIC_BATCH_NOTE} ({options})."


def shard_gaps(stack: str, config: dict[str, Any], context: ExportContext) -> list[str]:
    """A warning when the stack's tensor parallelism cannot split this model's heads the way infertune did."""
    shards, heads = config.get("shard_count", 1), context.attention_heads
    if shards <= 1 or heads is None or heads % shards == 0:
        return []
    accepted = [count for count in (1, 2, 4, 8) if heads % count == 0]
    return [f"shard_count={shards}: {stack} needs the model's {heads} attention heads divisible by the "
            f"tensor-parallel size and will refuse {shards}; infertune measured an uneven head-group split that "
            f"only it runs (sizes {stack} accepts here: {', '.join(map(str, accepted))})"]


def as_flags(options: dict[str, Any], skip: tuple[str, ...] = ()) -> list[str]:
    """``--key value`` pairs (a bare ``--key`` for true) for the options not in ``skip``."""
    return option_argv({key: value for key, value in options.items() if key not in skip})


def yaml_config(stack: str, context: ExportContext, config: dict[str, Any], batch_option: str,
                warnings: list[str], run: list[str], command: list[str] | None, options: dict[str, Any]) -> str:
    """A serving YAML: header, the batching note, warnings, how to run it (and the same as flags), the options."""
    lines = [*header(stack, context, config), batching_note(config, context, batch_option),
             *[f"# WARNING {warning}" for warning in warnings], f"# run: {shlex.join(run)}"]
    if command is not None:
        lines.append(f"# same as: {shlex.join(command)}")
    lines.append(yaml.safe_dump(options, sort_keys=False).rstrip())
    return "\n".join(lines) + "\n"
