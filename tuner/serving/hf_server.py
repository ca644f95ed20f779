"""``transformers serve --continuous-batching``, with every ``ContinuousBatchingConfig`` field settable.

    python -m tuner.serving.hf_server --model DIR --port P --cb-fields '{"max_requests_per_batch": 4}' [...]

Some fields (sequences in flight, block sharing, scheduler, async batching, compile level) have no CLI flag in
transformers 5.24, so this builds the same ``Serve`` app the CLI does and sets the engine's config before the
first request creates the engine (it is created lazily): the server, routes and engine are transformers' own.
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str]) -> int:
    """Start the server and block until it is stopped (the harness kills its process group)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a local model folder (config, weights, tokenizer)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--attn-implementation", default=None)
    parser.add_argument("--cb-fields", default="{}", help="ContinuousBatchingConfig keyword arguments as JSON")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from transformers import ContinuousBatchingConfig
    from transformers.cli.serve import Serve

    fields = json.loads(args.cb_fields)
    config = ContinuousBatchingConfig(**fields)  # a field that does not exist fails here, before the server starts
    serve = Serve(force_model=args.model, continuous_batching=True, device=args.device, dtype=args.dtype,
                  attn_implementation=args.attn_implementation, host=args.host, port=args.port,
                  default_seed=args.seed, log_level="info", non_blocking=True)
    serve._generation_state._cb_config = config  # noqa: SLF001 - read when the first request creates the engine
    print(f"infertune hf_server: serving {args.model} on {args.host}:{args.port} with {json.dumps(fields)}", flush=True)
    serve._thread.join()  # noqa: SLF001
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
