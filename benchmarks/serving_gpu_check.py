"""GPU check of the serving backend: our transformers-serve wrapper on CUDA with a tiny random model, driven by
concurrent completions (GuideLLM is not on the borrowed GPU machine), for two engine settings.

    python benchmarks/serving_gpu_check.py [--out DIR]     (prints the engine's resolved settings and req/s)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tuner.serving.flags import transformers_cb_fields
from tuner.serving.http import complete
from tuner.serving.model_folder import model_folder
from tuner.serving.server import free_port, start_server

TINY = {"architecture": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
        "num_attention_heads": 4, "num_key_value_heads": 2}


def run(folder: Path, config: dict, out: Path, requests: int = 32) -> dict:
    """Start a CUDA server for ``config``, send ``requests`` completions 16 at a time; its figures."""
    fields, _ = transformers_cb_fields(config)
    port = free_port()
    argv = [sys.executable, "-m", "tuner.serving.hf_server", "--model", str(folder), "--port", str(port),
            "--device", "cuda", "--dtype", config.get("dtype", "bfloat16"), "--cb-fields", json.dumps(fields)]
    log = out / f"server-{port}.log"
    server = start_server(argv, port=port, log_path=log, timeout_s=240)
    try:
        started = time.perf_counter()
        complete(server.base_url, str(folder), "warm up", 8, 240)
        warmup_s = time.perf_counter() - started
        prompts = [f"Request {index}: write about the sea." for index in range(requests)]
        started = time.perf_counter()
        with ThreadPoolExecutor(16) as pool:
            texts = list(pool.map(lambda prompt: complete(server.base_url, str(folder), prompt, 32, 120), prompts))
        elapsed = time.perf_counter() - started
    finally:
        server.stop()
    engine = [line for line in log.read_text().splitlines() if line.startswith("infertune engine:")]
    return {"config": config, "server_start_s": server.started_s, "warmup_s": warmup_s,
            "requests_per_s": requests / elapsed, "answered": sum(bool(text) for text in texts),
            "engine": engine[0] if engine else None}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("runs/serving-gpu-check"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    folder = model_folder({"tiny": TINY}, 0, args.out / "models").resolve()
    results = []
    for config in ({"max_num_seqs": 1, "dtype": "bfloat16"}, {"max_num_seqs": 16, "dtype": "bfloat16"},
                   {"max_num_seqs": 16, "dtype": "bfloat16", "async_batching": True}):
        try:
            results.append(run(folder, config, args.out))
        except Exception as error:  # noqa: BLE001 - one config's failure is a result, the others still run
            results.append({"config": config, "error": repr(error)[:300]})
        print(json.dumps(results[-1]), flush=True)
    (args.out / "serving_gpu_check.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
