"""Backend facts needed without torch: the HF knobs and their defaults, where GGUF conversions are cached."""

import os
from pathlib import Path

HF_KNOB_DEFAULTS = {"batch_size": 1, "dtype": "float32", "quantization": "none", "attn_implementation": "sdpa",
                    "cache_implementation": "dynamic", "compile": False, "shard_count": 1}
TINY_DEFAULTS = {"architecture": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
                 "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 512}


def models_dir(runs_dir: Path | None = None) -> Path:
    """Where converted weights are cached: $INFERTUNE_MODELS_DIR, else ``<runs>/models``."""
    return Path(os.environ.get("INFERTUNE_MODELS_DIR") or Path(runs_dir or "runs") / "models").resolve()


def converted_gguf_folder(gguf: Path, runs_dir: Path | None = None) -> Path:
    """The float32 safetensors folder a GGUF file is converted to (once)."""
    return models_dir(runs_dir) / f"{gguf.stem}-{gguf.stat().st_size}"
