"""The timing protocol of DESIGN §5 on a transformers model: warm up, repeat passes until they agree."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import CompileConfig, GenerationConfig, StoppingCriteria, StoppingCriteriaList

from tuner.measure.memory import peak_rss_mb, reset_peak_rss
from tuner.measure.timing import cv, percentile, repeats_agree


def synchronize(device: str) -> None:
    """Wait for queued device work so a wall-clock reading covers it."""
    if device.startswith("cuda"):
        torch.cuda.synchronize()


class FirstTokenClock(StoppingCriteria):
    """Never stops generation; notes when the first new token exists (prefill + first decode = TTFT)."""

    def __init__(self, device: str):
        self.device = device
        self.first_token_at: float | None = None

    def __call__(self, input_ids: torch.LongTensor, scores: Any, **kwargs: Any) -> torch.BoolTensor:
        if self.first_token_at is None:
            synchronize(self.device)
            self.first_token_at = time.perf_counter()
        return torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)


def render_prompts(tokenizer: Any, prompts: list[str], chat_template: bool) -> list[str]:
    """Apply the chat template (instruct models) or keep the raw text."""
    if not chat_template:
        return list(prompts)
    return [tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                          tokenize=False) for prompt in prompts]


def build_batches(tokenizer: Any, workload: dict[str, Any], batch_size: int, device: str) -> list[dict[str, Any]]:
    """Batches covering at least ``num_requests`` requests (prompts cycle), all padded to one length."""
    texts = render_prompts(tokenizer, workload["prompts"], workload["chat_template"])
    count = max(workload["num_requests"], batch_size)
    count = -(-count // batch_size) * batch_size  # whole batches: a static batch is always full
    longest = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts)
    length = min(longest, workload["max_prompt_tokens"])
    # One padded length for every batch: comparable repeats and a single shape for compiled graphs.
    encoded = tokenizer(texts, return_tensors="pt", padding="max_length", truncation=True, max_length=length,
                        add_special_tokens=False)
    rows = torch.arange(count) % len(texts)  # tokenized once, repeated: huge batches stay cheap to build
    return [{key: value[rows[start:start + batch_size]].to(device) for key, value in encoded.items()}
            for start in range(0, count, batch_size)]


def generation_config(config: dict[str, Any], new_tokens: int, tokenizer: Any, device: str) -> GenerationConfig:
    """Greedy decoding of exactly ``new_tokens`` tokens with the config's cache and compile choices."""
    settings: dict[str, Any] = {
        "max_new_tokens": new_tokens, "min_new_tokens": new_tokens, "do_sample": False,
        "pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id,
        "disable_compile": not config["compile"], "return_dict_in_generate": True,
    }
    if config["cache_implementation"] == "static":
        settings["cache_implementation"] = "static"
    if config["compile"]:
        # CUDA: capture CUDA graphs too (small models are launch-overhead bound there).
        mode = "reduce-overhead" if device.startswith("cuda") else "default"
        compile_config = CompileConfig(fullgraph=False, mode=mode)
        # transformers compiles on its own only on CUDA-like devices; this private switch makes it real on CPU.
        compile_config._compile_all_devices = True
        settings["compile_config"] = compile_config
    return GenerationConfig(**settings)


@dataclass
class TimedCall:
    """One generate call: end-to-end and first-token seconds."""

    e2e_s: float
    ttft_s: float


def timed_generate(model: Any, batch: dict[str, Any], config: GenerationConfig, device: str) -> tuple[TimedCall, Any]:
    """Run generate once, synchronized, and return its timings and output."""
    clock = FirstTokenClock(device)
    synchronize(device)
    start = time.perf_counter()
    with torch.inference_mode():
        output = model.generate(**batch, generation_config=config, stopping_criteria=StoppingCriteriaList([clock]))
    synchronize(device)
    end = time.perf_counter()
    return TimedCall(end - start, (clock.first_token_at or end) - start), output


def _unique_graphs() -> int:
    """Graphs torch.compile has produced in this process so far (each new batch shape adds some)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _alone(value: float) -> float:
    return value


def measure_generation(model: Any, tokenizer: Any, workload: dict[str, Any], config: dict[str, Any],
                       device: str, consensus: Callable[[float], float] = _alone) -> tuple[dict[str, Any],
                                                                                        dict[str, Any]]:
    """Warm up, then time repeats (whole passes over the workload) until three agree or the time cap.

    ``consensus`` turns a local reading into the one every tensor-parallel rank uses (the slowest rank's),
    so all ranks take the same decisions and call generate in lockstep. Returns (metrics, info): the
    DESIGN §5 metrics and the code path that really ran.
    """
    batch_size = config["batch_size"]
    new_tokens = workload["new_tokens"]
    batches = build_batches(tokenizer, workload, batch_size, device)
    gen_config = generation_config(config, new_tokens, tokenizer, device)
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    reset_peak_rss()

    graphs_before = _unique_graphs()
    warm_start = time.perf_counter()
    warm_call, output = timed_generate(model, batches[0], gen_config, device)
    warmup_s = consensus(time.perf_counter() - warm_start)
    graphs_compiled = _unique_graphs() - graphs_before  # > 0: this warmup paid for (re)compiling a shape
    generated = output.sequences.shape[1] - batches[0]["input_ids"].shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"generate produced {generated} tokens, expected exactly {new_tokens}")

    # Calibrate: a repeat loops the workload until it lasts min_repeat_s, so fast configs are not timer noise.
    calibration_start = time.perf_counter()
    calibration = consensus(sum(timed_generate(model, batch, gen_config, device)[0].e2e_s for batch in batches))
    calibration_s = time.perf_counter() - calibration_start
    loops = max(1, math.ceil(workload["min_repeat_s"] / max(calibration, 1e-9)))

    calls: list[TimedCall] = []
    pass_times: list[float] = []
    deadline = time.perf_counter() + workload["max_measure_s"]
    while len(pass_times) < workload["max_repeats"]:
        repeat_calls = [timed_generate(model, batch, gen_config, device)[0] for _ in range(loops) for batch in batches]
        calls.extend(repeat_calls)
        pass_times.append(consensus(sum(call.e2e_s for call in repeat_calls)))
        if repeats_agree(pass_times) or consensus(float(time.perf_counter() > deadline)):
            break

    stable = repeats_agree(pass_times)
    e2e = [call.e2e_s for call in calls]
    ttft = [call.ttft_s for call in calls]
    tokens = len(calls) * batch_size * new_tokens
    metrics = {
        "ttft_s": sum(ttft) / len(ttft),
        "tpot_s": sum((call.e2e_s - call.ttft_s) / (new_tokens - 1) for call in calls) / len(calls),
        "latency_p50_s": percentile(e2e, 0.50),
        "latency_p95_s": percentile(e2e, 0.95),
        "tokens_per_s": tokens / sum(e2e),
        "peak_mem_mb": (torch.cuda.max_memory_allocated() / 2**20) if device.startswith("cuda") else peak_rss_mb(),
        "warmup_s": warmup_s,
        "repeats": len(pass_times),
        "cv": cv(pass_times[-3:]),
    }
    info = {
        "stable": stable,
        "batches_per_pass": len(batches),
        "passes_per_repeat": loops,
        "prompt_tokens": int(batches[0]["input_ids"].shape[1]),
        "cache_class": type(getattr(output, "cache", None) or output.past_key_values).__name__,
        "attn_implementation": model.config._attn_implementation,
        "compiled": getattr(model, "_compiled_call", None) is not None and config["compile"],
        "graphs_compiled_in_warmup": graphs_compiled,
        "inference_s": warmup_s + calibration_s + sum(e2e),
    }
    return metrics, info
