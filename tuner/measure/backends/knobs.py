"""The knobs the HF backend understands, with what each is when a task's space does not tune it (no torch)."""

HF_KNOB_DEFAULTS = {"batch_size": 1, "dtype": "float32", "quantization": "none", "attn_implementation": "sdpa",
                    "cache_implementation": "dynamic", "compile": False, "shard_count": 1}
