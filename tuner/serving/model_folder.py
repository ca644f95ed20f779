"""The local folder a server loads a task's model from: converted GGUF, a path, or the tiny model saved once."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from tuner.measure.backends.model_store import converted_gguf_folder


def model_folder(model_spec: dict[str, Any], seed: int, models_root: Path) -> Path:
    """A folder with config, weights and tokenizer for ``model_spec`` (saved under ``models_root`` on first use)."""
    if "path" in model_spec:
        return Path(model_spec["path"])
    from tuner.measure.backends import hf_models

    if "gguf" in model_spec:
        gguf = Path(model_spec["gguf"])
        if not (converted_gguf_folder(gguf, models_root.parent) / "config.json").is_file():
            _convert_in(models_root, model_spec)
        return converted_gguf_folder(gguf, models_root.parent)
    if "tiny" not in model_spec:
        raise ValueError("a serving task needs a local model (gguf, path or tiny); a hub id cannot be fetched here")
    digest = hashlib.sha256(json.dumps([model_spec["tiny"], seed], sort_keys=True).encode()).hexdigest()[:12]
    target = models_root / f"tiny-{digest}"
    if (target / "config.json").is_file():
        return target
    tokenizer = hf_models.load_tokenizer(model_spec)
    # the same random weights the static backend measures (same spec, same seed)
    model = hf_models._tiny_model(model_spec["tiny"], len(tokenizer), seed)  # noqa: SLF001
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    hf_models.save_folder(model, tokenizer, target)
    return target


def _convert_in(models_root: Path, model_spec: dict[str, Any]) -> None:
    """Convert a GGUF file into ``models_root`` (the converter reads its folder from the environment)."""
    from tuner.measure.backends import hf_models

    saved = os.environ.get("INFERTUNE_MODELS_DIR")
    os.environ["INFERTUNE_MODELS_DIR"] = str(models_root)
    try:
        hf_models.weights_location(model_spec)
    finally:
        if saved is None:
            os.environ.pop("INFERTUNE_MODELS_DIR", None)
        else:
            os.environ["INFERTUNE_MODELS_DIR"] = saved
