"""Text Generation Inference (launcher, maintenance mode): launcher arguments and environment variables."""

from __future__ import annotations

import shlex
from typing import Any

from tuner.export.common import ExportContext, Exported, batching_note, header, mapped, shard_gaps
from tuner.serving.flags import command_text, option_argv


def export(config: dict[str, Any], context: ExportContext) -> Exported:
    """tgi.sh: the launcher's environment variables, the same settings as flags, and the launch."""
    engine = mapped("tgi", config, context)
    out = Exported(warnings=[*shard_gaps("TGI", config, context), *engine.gaps])
    arguments: dict[str, Any] = {"model-id": context.model, **engine.options}
    notes = [*header("TGI", context, config), batching_note(config, context, "max-concurrent-requests, max-batch-size"),
             *[f"# WARNING {warning}" for warning in out.warnings]]
    command = command_text(["text-generation-launcher", *option_argv(arguments)], engine.env)
    variables = {**{key.upper().replace("-", "_"): str(value) for key, value in arguments.items()}, **engine.env}
    exports = [f"export {key}={shlex.quote(value)}" for key, value in variables.items()]
    out.files["tgi.sh"] = "\n".join(["#!/usr/bin/env bash", *notes,
                                       "# the launcher reads these variables; the same as flags:",
                                       f"#   {command}", *exports,
                                       'exec text-generation-launcher "$@"']) + "\n"
    return out
