"""Model facts needed without torch: where converted weights are cached, the tiny model, workers per host."""

import os
from pathlib import Path

HOST_WORKERS = "INFERTUNE_HOST_WORKERS"  # how many workers share this host's memory (ppo --envs N on the CPU)
TINY_DEFAULTS = {"architecture": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}


def models_dir(runs_dir: Path | None = None) -> Path:
    """Where converted weights are cached: $INFERTUNE_MODELS_DIR, else ``<runs>/models``."""
    return Path(os.environ.get("INFERTUNE_MODELS_DIR") or Path(runs_dir or "runs") / "models").resolve()


def converted_gguf_folder(gguf: Path, runs_dir: Path | None = None) -> Path:
    """The float32 safetensors folder a GGUF file is converted to (once)."""
    return models_dir(runs_dir) / f"{gguf.stem}-{gguf.stat().st_size}"
