"""Each serving knob transformers serve runs changes what its continuous-batching engine does, seen in the engine."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM, ContinuousBatchingConfig, GenerationConfig

from tuner.serving.flags import engine_options, transformers_cb_fields
from tuner.serving.http import complete
from tuner.serving.model_folder import model_folder
from tuner.serving.server import free_port, start_server

# a fixed small cache: left unset, the engine sizes it from free memory (60% of the RAM on a CPU)
BASE = {"kv_cache_blocks": 64, "block_size": 16}
PROMPT = list(range(3, 43))  # 40 byte tokens
LONG_PROMPT = list(range(3, 83))  # 80
NEW_TOKENS = 4
GREEDY = GenerationConfig(max_new_tokens=NEW_TOKENS, do_sample=False, eos_token_id=-1)  # never stops early
Step = list[tuple[str, int, int]]  # one scheduled batch: (request id, tokens it processes, KV blocks it holds)


@dataclass
class EngineRun:
    """A real continuous-batching engine after a run: its batch processor, what it scheduled, what it generated."""

    engine: Any  # transformers' ContinuousBatchingManager
    processor: Any  # its ContinuousBatchProcessor (cache, scheduler, model runner)
    steps: list[Step] = field(default_factory=list)
    events: list[str] = field(default_factory=list)  # "schedule" / "update", in the order the engine did them
    outputs: dict[str, list[int]] = field(default_factory=dict)

    def most_requests(self) -> int:
        """The most requests the scheduler put in one step."""
        return max(len(step) for step in self.steps)

    def most_tokens(self) -> int:
        """The most tokens the scheduler put in one step."""
        return max(sum(tokens for _, tokens, _ in step) for step in self.steps)

    def first_step_of(self, request_id: str) -> tuple[str, int, int]:
        """The request's entry in the first step that scheduled it."""
        return next(entry for step in self.steps for entry in step if entry[0] == request_id)


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return model_folder({"tiny": {}}, 0, tmp_path_factory.mktemp("models"))


@pytest.fixture(scope="module")
def model(folder: Path) -> Any:
    return AutoModelForCausalLM.from_pretrained(folder)


def run_engine(model: Any, config: dict[str, Any], prompts: list[list[int]],
               prepare: Callable[[Any], None] | None = None) -> EngineRun:
    """Greedy-generate ``prompts`` on an engine built from the knobs' ``ContinuousBatchingConfig`` fields."""
    fields, gaps = transformers_cb_fields(config)
    assert not gaps
    engine = model.init_continuous_batching(generation_config=GREEDY,
                                            continuous_batching_config=ContinuousBatchingConfig(**fields))
    processor = engine._create_batch_processor()  # what the engine's thread builds; it reuses this one on start
    engine.batch_processor = processor
    run = EngineRun(engine, processor)
    blocks = next(iter(processor.cache.cache_allocators.values())).block_table
    schedule_batch, update_batch = processor.scheduler.schedule_batch, processor.update_batch

    def schedule_recorded(token_budget: int, cache_budget: int) -> Any:
        scheduled = schedule_batch(token_budget, cache_budget)
        if scheduled[0]:
            run.events.append("schedule")
            run.steps.append([(future.state.request_id, future.query_length, len(blocks[future.state.request_id]))
                              for future in scheduled[0]])
        return scheduled

    def update_recorded() -> None:
        run.events.append("update")
        update_batch()

    processor.scheduler.schedule_batch, processor.update_batch = schedule_recorded, update_recorded
    if prepare is not None:
        prepare(processor)
    for prompt in prompts:  # queued before the loop starts: its first step sees them all, in this order
        engine.add_request(prompt, max_new_tokens=NEW_TOKENS)
    engine.start()
    try:
        while len(run.outputs) < len(prompts):
            result = engine.get_result(timeout=30)
            assert result is not None, f"the engine stopped: {engine.background_thread_status.fatal_error!r}"
            if result.is_finished():
                run.outputs[result.request_id] = result.generated_tokens
    finally:
        engine.stop(block=True, timeout=10)
        engine.destroy()
    return run


def test_max_num_seqs_caps_the_requests_in_one_step(model):
    one, four = (run_engine(model, {**BASE, "max_num_seqs": seqs}, [PROMPT] * 4) for seqs in (1, 4))
    assert (one.processor.scheduler.max_requests_per_batch, four.processor.scheduler.max_requests_per_batch) == (1, 4)
    assert (one.most_requests(), four.most_requests()) == (1, 4)
    assert (len(one.steps), len(four.steps)) == (4 * NEW_TOKENS, NEW_TOKENS)  # one at a time vs all together
    assert one.outputs == four.outputs


def test_max_batch_tokens_caps_the_tokens_in_one_step(model):
    small, large = (run_engine(model, {**BASE, "max_batch_tokens": tokens}, [PROMPT]) for tokens in (32, 64))
    assert (small.processor.cache.max_batch_tokens, large.processor.cache.max_batch_tokens) == (32, 64)
    assert [tokens for step in small.steps for _, tokens, _ in step] == [32, 8, 1, 1, 1]  # the prompt in two chunks
    assert [tokens for step in large.steps for _, tokens, _ in step] == [40, 1, 1, 1]
    assert small.outputs == large.outputs


def test_kv_cache_blocks_size_the_cache_and_limit_what_runs_together(model):
    small, large = (run_engine(model, {**BASE, "kv_cache_blocks": blocks}, [PROMPT] * 4) for blocks in (8, 64))
    assert (small.processor.cache.num_blocks, large.processor.cache.num_blocks) == (8, 64)
    assert small.processor.cache.cache_tensor.numel() < large.processor.cache.cache_tensor.numel()
    # each request needs 3 blocks of 16 tokens: 8 blocks cannot hold all 4 at once, 64 can
    assert small.most_requests() < 4
    assert large.most_requests() == 4
    assert small.outputs == large.outputs


def test_block_size_sets_the_page_size(model):
    small, large = (run_engine(model, {**BASE, "block_size": size}, [PROMPT]) for size in (16, 64))
    pages = [{name: allocator.tokens_per_page for name, allocator in run.processor.cache.cache_allocators.items()}
             for run in (small, large)]
    assert pages == [{"full_attention": 16}, {"full_attention": 64}]
    assert (small.steps[-1][0][2], large.steps[-1][0][2]) == (3, 1)  # 43 tokens in the cache: 3 pages vs 1


def test_prefix_caching_shares_the_blocks_of_a_common_prefix(model):
    prompts = [[*PROMPT, 50], [*PROMPT, 60]]  # 41 tokens, the first 40 in common: 2 full blocks of 16
    shared, unshared = (run_engine(model, {**BASE, "prefix_caching": on, "max_num_seqs": 1}, prompts)
                        for on in (True, False))
    assert (shared.processor.cache.use_prefix_sharing, unshared.processor.cache.use_prefix_sharing) == (True, False)
    assert shared.first_step_of("req_0")[1] == unshared.first_step_of("req_0")[1] == 41
    assert shared.first_step_of("req_1")[1] == 41 - 32  # the second request reuses the first one's 2 blocks
    assert unshared.first_step_of("req_1")[1] == 41
    assert shared.outputs == unshared.outputs


def test_scheduler_decides_whether_decodes_or_split_prefills_go_first(model):
    # a 2-token prompt is decoding while an 80-token one is still prefilled in chunks (32 tokens a step)
    fifo, prefill_first = (run_engine(model, {**BASE, "scheduler": name, "max_batch_tokens": 32},
                                      [[5, 6], LONG_PROMPT]) for name in ("fifo", "prefill_first"))
    assert type(fifo.processor.scheduler).__name__ == "FIFOScheduler"
    assert type(prefill_first.processor.scheduler).__name__ == "PrefillFirstScheduler"
    assert fifo.steps[0] == prefill_first.steps[0] == [("req_0", 2, 1), ("req_1", 30, 2)]
    assert [entry[:2] for entry in fifo.steps[1]] == [("req_0", 1), ("req_1", 31)]  # the decode first
    assert [entry[:2] for entry in prefill_first.steps[1]] == [("req_1", 32)]  # the split prefill takes the step
    assert fifo.outputs == prefill_first.outputs


def test_async_batching_double_buffers_the_steps(model, folder):
    sync = run_engine(model, {**BASE, "async_batching": False}, [PROMPT])
    assert sync.processor.use_async_batching is False
    assert type(sync.processor.inputs_and_outputs).__name__ == "ContinuousBatchingIOs"
    assert sync.events == ["schedule", "update"] * NEW_TOKENS  # a step's tokens are read before the next is planned
    if not torch.cuda.is_available():  # transformers runs double-buffered batches on CUDA/XPU streams only
        with pytest.raises(RuntimeError, match="Async batching requires a device type"):
            run_engine(model, {**BASE, "async_batching": True}, [PROMPT])
        return
    on_gpu = AutoModelForCausalLM.from_pretrained(folder, device_map="cuda")
    double = run_engine(on_gpu, {**BASE, "async_batching": True}, [PROMPT])
    assert double.processor.use_async_batching is True
    assert type(double.processor.inputs_and_outputs).__name__ == "ContinuousBatchingAsyncIOs"
    assert double.events[:3] == ["schedule", "schedule", "update"]  # step 2 is planned while step 1 runs
    assert len(double.outputs["req_0"]) == NEW_TOKENS


def test_compile_runs_the_steps_through_a_compiled_forward(model):
    calls: dict[bool, list[tuple[str, int]]] = {False: [], True: []}
    compiled: dict[bool, tuple[Any, Any]] = {}  # the runner's compiled forward, and its own forward

    def spy(on: bool) -> Callable[[Any], None]:
        def prepare(processor: Any) -> None:
            runner = processor.model_runner
            forward = runner._forward_process_and_sample
            compiled[on] = (runner._compiled_varlen, forward)

            def called(kind: str) -> Callable[..., None]:
                def call(model: Any, batch: dict[str, Any], *rest: Any) -> None:
                    calls[on].append((kind, batch["input_ids"].shape[-1]))
                    forward(model, batch, *rest)  # eager: inductor takes ~90 s on this CPU for the tiny model
                return call

            runner._forward_process_and_sample = called("eager")
            if runner._compiled_varlen is not None:
                runner._compiled_varlen = called("compiled")
        return prepare

    eager, fast = (run_engine(model, {**BASE, "compile": on}, [PROMPT], prepare=spy(on)) for on in (False, True))
    assert compiled[False][0] is None
    assert compiled[True][0]._torchdynamo_orig_callable == compiled[True][1]  # torch.compile of the engine's forward
    assert fast.engine.continuous_batching_config.varlen_compile_config.backend == "inductor"
    assert calls[False] == [("eager", 40), ("eager", 1), ("eager", 1), ("eager", 1)]
    assert calls[True] == [("compiled", 64)] * NEW_TOKENS  # static shapes: every step padded to 64 tokens
    assert eager.outputs == fast.outputs


def test_dtype_sets_the_weights_and_the_kv_cache(folder):
    runs = {}
    for dtype in ("float32", "bfloat16"):
        loaded = AutoModelForCausalLM.from_pretrained(folder, dtype=engine_options("transformers", {"dtype": dtype})
                                                      .options["dtype"])
        runs[dtype] = run_engine(loaded, BASE, [PROMPT])
    for dtype, run in runs.items():
        assert {parameter.dtype for parameter in run.engine.model.parameters()} == {getattr(torch, dtype)}
        assert run.processor.cache.dtype == run.processor.model_dtype == getattr(torch, dtype)
    full, half = (runs[dtype].processor.cache for dtype in ("float32", "bfloat16"))
    assert full.num_blocks == half.num_blocks and full.cache_tensor.numel() == 2 * half.cache_tensor.numel()


def test_the_server_runs_the_engine_our_wrapper_configures(folder, tmp_path):
    config = {"max_num_seqs": 3, "max_batch_tokens": 64, "kv_cache_blocks": 16, "block_size": 32,
              "prefix_caching": False, "scheduler": "prefill_first", "async_batching": False, "compile": False,
              "dtype": "bfloat16"}  # every knob away from the engine's default (or its CPU default)
    fields, _ = transformers_cb_fields(config)
    port = free_port()
    argv = [sys.executable, "-m", "tuner.serving.hf_server", "--model", str(folder), "--port", str(port),
            "--dtype", engine_options("transformers", config).options["dtype"], "--cb-fields", json.dumps(fields)]
    server = start_server(argv, port=port, log_path=tmp_path / "server.log", timeout_s=120)
    try:
        for _ in range(2):
            complete(server.base_url, str(folder), "hi", 4, 60)
    finally:
        server.stop()
    lines = [line for line in server.tail(10_000) if line.startswith("infertune engine: ")]
    assert len(lines) == 1, server.tail()  # one engine, made by the first request
    assert json.loads(lines[0].removeprefix("infertune engine: ")) == {
        "page_size": {"full_attention": 32}, "num_blocks": 16, "max_batch_tokens": 64, "max_requests_per_batch": 3,
        "block_sharing": False, "scheduler": "PrefillFirstScheduler", "async_batching": False,
        "io": "ContinuousBatchingIOs", "compiled": {"varlen": False, "decode": False},
        "cuda_graphs": {"varlen": False, "decode": False}, "dtype": "bfloat16", "cache_dtype": "bfloat16",
        "attn_implementation": "sdpa", "device": "cpu"}
