"""``transformers serve --continuous-batching``, with every ``ContinuousBatchingConfig`` field settable.

    python -m tuner.serving.hf_server --model DIR --port P --cb-fields '{"max_requests_per_batch": 4}' [...]

Some fields (sequences in flight, block sharing, scheduler, async batching, compile level) have no CLI flag in
transformers 5.24, so this builds the same ``Serve`` app the CLI does and sets the engine's config before the
first request creates the engine (it is created lazily): the server, routes and engine are transformers' own.
Once the first request has created the engine, one ``infertune engine: {json}`` line on stdout says what it
resolved and runs with, read from its own cache, scheduler, batch processor and model runner.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

ENGINE_START_S = 120.0  # how long the first request waits for the engine's thread to build its cache and scheduler
ENGINE_POLL_S = 0.01


def engine_settings(engine: Any) -> dict[str, Any]:
    """What a started ``ContinuousBatchingManager`` runs with, read from the objects that do the work."""
    processor = engine.batch_processor
    cache, scheduler, runner = processor.cache, processor.scheduler, processor.model_runner
    return {
        "page_size": {name: allocator.tokens_per_page for name, allocator in cache.cache_allocators.items()},
        "num_blocks": cache.num_blocks,
        "max_batch_tokens": cache.max_batch_tokens,
        "max_requests_per_batch": scheduler.max_requests_per_batch,
        "block_sharing": cache.use_prefix_sharing,
        "scheduler": type(scheduler).__name__,
        "async_batching": processor.use_async_batching,
        "io": type(processor.inputs_and_outputs).__name__,
        "compiled": {"varlen": runner._compiled_varlen is not None,  # noqa: SLF001 - the engine's compiled forwards
                     "decode": runner._compiled_decode is not None},  # noqa: SLF001
        "cuda_graphs": {"varlen": runner.use_cuda_graph_varlen, "decode": runner.use_cuda_graph_decode},
        "dtype": str(engine.model.dtype).removeprefix("torch."),
        "cache_dtype": str(cache.dtype).removeprefix("torch."),
        "attn_implementation": engine.model.config._attn_implementation,  # noqa: SLF001
        "device": str(engine.model.device),
    }


def started_engine(engine: Any, timeout_s: float = ENGINE_START_S) -> dict[str, Any]:
    """The engine's settings once its thread has built the batch processor, or why it has none."""
    deadline = time.monotonic() + timeout_s
    while engine.batch_processor is None:
        error = engine.background_thread_status.fatal_error
        if error is not None or not engine.is_running():
            return {"error": f"the engine did not start: {error!r}"}
        if time.monotonic() > deadline:
            return {"error": f"the engine had no batch processor after {timeout_s:.0f} s"}
        time.sleep(ENGINE_POLL_S)
    return engine_settings(engine)


def log_engine_settings(state: Any) -> None:
    """Print the engine's settings when a request first creates it (wraps the CB manager's ``init_cb``)."""
    get_manager = state.get_manager

    def get_manager_logged(model_id: str, use_cb: bool = False) -> Any:
        manager = get_manager(model_id, use_cb=use_cb)
        if use_cb and "init_cb" not in vars(manager):
            init_cb = manager.init_cb

            def init_cb_logged(model: Any, gen_config: Any) -> None:
                creates = manager._cb is None  # noqa: SLF001 - init_cb returns at once when the engine exists
                init_cb(model, gen_config)
                if creates and manager._cb is not None:  # noqa: SLF001
                    print(f"infertune engine: {json.dumps(started_engine(manager._cb))}", flush=True)  # noqa: SLF001

            manager.init_cb = init_cb_logged
        return manager

    state.get_manager = get_manager_logged


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
    parser.add_argument("--no-continuous-batching", action="store_true",
                        help="one generate call per request, as transformers serve does without the flag")
    args = parser.parse_args(argv)

    from transformers import ContinuousBatchingConfig
    from transformers.cli.serve import Serve

    fields = json.loads(args.cb_fields)
    config = ContinuousBatchingConfig(**fields)  # a field that does not exist fails here, before the server starts
    serve = Serve(force_model=args.model, continuous_batching=not args.no_continuous_batching, device=args.device,
                  dtype=args.dtype, attn_implementation=args.attn_implementation, host=args.host, port=args.port,
                  default_seed=args.seed, log_level="info", non_blocking=True)
    serve._generation_state._cb_config = config  # noqa: SLF001 - read when the first request creates the engine
    log_engine_settings(serve._generation_state)  # noqa: SLF001
    print(f"infertune hf_server: serving {args.model} on {args.host}:{args.port} with {json.dumps(fields)}", flush=True)
    serve._thread.join()  # noqa: SLF001
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
