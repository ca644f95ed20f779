"""Export a measured config to serving stacks: pure functions config → files (design §10)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tuner.export import hf, sglang, tgi, trtllm, vllm
from tuner.export.common import ExportContext, Exported

TARGETS: dict[str, Callable[[dict[str, Any], ExportContext], Exported]] = {
    "vllm": vllm.export, "sglang": sglang.export, "tgi": tgi.export, "trtllm": trtllm.export, "hf": hf.export}


def export_to(targets: list[str], config: dict[str, Any], context: ExportContext,
              out_dir: Path) -> tuple[list[Path], list[str]]:
    """Write every target's files under ``out_dir``; returns (paths, warnings prefixed by the target)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths, warnings = [], []
    for target in targets:
        exported = TARGETS[target](config, context)
        for name, text in exported.files.items():
            path = out_dir / name
            path.write_text(text)
            if name.endswith(".sh"):
                path.chmod(0o755)
            paths.append(path)
        warnings += [f"{target}: {warning}" for warning in exported.warnings]
    return paths, warnings


__all__ = ["TARGETS", "ExportContext", "Exported", "export_to"]
