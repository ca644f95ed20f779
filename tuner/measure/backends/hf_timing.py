"""The timing protocol of design §5 on a transformers model: warm up, repeat passes until they agree."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from transformers import CompileConfig, GenerationConfig, StoppingCriteria, StoppingCriteriaList

from tuner.measure import phases
from tuner.measure.early_stop import PRUNED
from tuner.measure.faults import timing_noise
from tuner.measure.memory import MB, generation_peak, model_bytes, peak_rss_mb, reset_peak_rss
from tuner.measure.timing import agreeing_window, repeats_agree, window_figures
from tuner.measure.worker_caches import compile_cache_enabled

# Every pass so far as (end-to-end s, first-token s) per generate call → why to stop now, or None.
StopCheck = Callable[[list[list[tuple[float, float]]]], "str | None"]


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


def fit_chat_prompt(tokenizer: Any, prompt: str, limit: int) -> str:
    """The prompt rendered in the chat template within ``limit`` tokens: the user content is cut, never the template.

    Cutting the rendered text would drop the assistant header at its end, and the model would answer
    a prompt no server ever sends.
    """
    def length(content: str) -> int:
        return len(tokenizer(render_prompts(tokenizer, [content], True)[0], add_special_tokens=False)["input_ids"])

    if length(prompt) <= limit:
        return render_prompts(tokenizer, [prompt], True)[0]
    if length("") > limit:
        raise ValueError(f"max_prompt_tokens {limit} is shorter than the chat template itself ({length('')} tokens)")
    content = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    keep = max(0, limit - length(""))
    while True:
        text = tokenizer.decode(content[:keep])
        excess = length(text) - limit  # re-tokenizing at the cut may merge differently: shorten until it fits
        if excess <= 0 or keep == 0:
            return render_prompts(tokenizer, [text], True)[0]
        keep = max(0, keep - excess)


def build_batches(tokenizer: Any, workload: dict[str, Any], batch_size: int, device: str) -> list[dict[str, Any]]:
    """Batches covering at least ``num_requests`` requests (prompts cycle), all padded to one length.

    A chat prompt longer than ``max_prompt_tokens`` loses the end of its user content (the template stays
    whole); a raw prompt keeps its first ``max_prompt_tokens`` tokens.
    """
    limit = workload["max_prompt_tokens"]
    if workload["chat_template"]:
        texts = [fit_chat_prompt(tokenizer, prompt, limit) for prompt in workload["prompts"]]
    else:
        texts = list(workload["prompts"])
    count = max(workload["num_requests"], batch_size)
    count = -(-count // batch_size) * batch_size  # whole batches: a static batch is always full
    longest = max(len(tokenizer(text, add_special_tokens=False)["input_ids"]) for text in texts)
    length = min(longest, limit)
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


def timed_generate(model: Any, batch: dict[str, Any], config: GenerationConfig, device: str,
                   stall_s: float = 0.0) -> tuple[TimedCall, Any]:
    """Run generate once, synchronized, and return its timings and output (``stall_s``: injected noise, tests)."""
    clock = FirstTokenClock(device)
    synchronize(device)
    start = time.perf_counter()
    if stall_s:
        time.sleep(stall_s)
    with torch.inference_mode():
        output = model.generate(**batch, generation_config=config, stopping_criteria=StoppingCriteriaList([clock]))
    synchronize(device)
    end = time.perf_counter()
    return TimedCall(end - start, (clock.first_token_at or end) - start), output


# What transformers leaves on a model between generate calls: the compiled forward and the longest static cache.
GENERATION_STATE = ("_compiled_call", "_last_compile_config", "_previous_max_cache_length")


def forget_earlier_configs(model: Any) -> None:
    """Start a config from a fresh compile state, so its figures do not depend on what the worker measured before.

    A kept model carries transformers' compiled forward and its longest static cache so far; dynamo marks a
    dimension dynamic once it has seen two sizes, after which a new batch size reuses the earlier configs'
    dynamic-shape graph (no warm-up of its own, other kernels). So dynamo starts over for every config. In a
    search (``compile_cache_enabled``) inductor may then serve the graph from its FX graph cache on disk, when
    this config (same shapes, dtype, kernels) was compiled before: the same code, without the ~20 s of lowering;
    otherwise those caches are off and ``warmup_s`` is a cold compile.
    """
    import torch._dynamo
    import torch._functorch.config
    import torch._inductor.config

    for name in GENERATION_STATE:
        vars(model).pop(name, None)
    torch._dynamo.reset()
    reuse = compile_cache_enabled()
    torch._inductor.config.fx_graph_cache = reuse
    torch._functorch.config.enable_autograd_cache = reuse


def _compile_cache_hits() -> int:
    """Compiled graphs inductor has served from its FX graph cache in this process so far."""
    from torch._dynamo.utils import counters

    return int(counters["inductor"]["fxgraph_cache_hit"])


def _unique_graphs() -> int:
    """Graphs torch.compile has produced in this process so far (each new batch shape adds some)."""
    from torch._dynamo.utils import counters

    return int(counters["stats"]["unique_graphs"])


def _attention_kernel(ops: set[str]) -> str:
    """Which attention really ran, from the aten ops of a profiled call (the knob only asks for one)."""
    if "aten::scaled_dot_product_attention" in ops:
        return "sdpa"
    return "eager" if ops & {"aten::softmax", "aten::_softmax"} else "unknown"


def _spread(times: list[float]) -> float | None:
    """(max - min) / mean of the latest passes: how far they are from agreeing (None before two)."""
    if len(times) < 2:
        return None
    return (max(times) - min(times)) / (sum(times) / len(times))


def _alone(value: float) -> float:
    return value


def measure_generation(model: Any, tokenizer: Any, workload: dict[str, Any], config: dict[str, Any],
                       device: str, consensus: Callable[[float], float] = _alone,
                       stop_check: StopCheck | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Warm up, then time repeats (whole passes over the workload) until three agree or the time cap.

    ``consensus`` turns a local reading into the one every tensor-parallel rank uses (the slowest rank's),
    so all ranks take the same decisions and call generate in lockstep. ``stop_check`` is asked after each
    timed pass, with every pass so far (the calibration pass first); a reason it returns ends the measurement
    there, and ``info["pruned"]`` holds it (no memory call: ``peak_mem_mb`` is then null). Returns
    (metrics, info): the design §5 metrics, all from the agreeing window (the last 3 passes), and the code
    path that really ran.
    """
    batch_size = config["batch_size"]
    new_tokens = workload["new_tokens"]
    batches = build_batches(tokenizer, workload, batch_size, device)
    gen_config = generation_config(config, new_tokens, tokenizer, device)
    reset_peak_rss()
    forget_earlier_configs(model)

    graphs_before, hits_before = _unique_graphs(), _compile_cache_hits()
    if config["compile"]:
        phases.enter("warming up and compiling", probe=lambda: {"graphs": _unique_graphs() - graphs_before})
    else:
        phases.enter("warming up")
    warm_start = time.perf_counter()
    warm_call, output = timed_generate(model, batches[0], gen_config, device)
    warmup_s = consensus(time.perf_counter() - warm_start)
    graphs_compiled = _unique_graphs() - graphs_before  # > 0: this warmup paid for (re)compiling a shape
    compile_cache_hits = _compile_cache_hits() - hits_before  # of those, served from inductor's cache
    generated = output.sequences.shape[1] - batches[0]["input_ids"].shape[1]
    if generated != new_tokens:
        raise RuntimeError(f"generate produced {generated} tokens, expected exactly {new_tokens}")

    # Calibrate: a repeat loops the workload until it lasts min_repeat_s, so fast configs are not timer noise.
    phases.enter("calibrating the repeat length")
    calibration_start = time.perf_counter()
    calibration_calls = [timed_generate(model, batch, gen_config, device)[0] for batch in batches]
    calibration = consensus(sum(call.e2e_s for call in calibration_calls))
    calibration_s = time.perf_counter() - calibration_start
    loops = max(1, math.ceil(workload["min_repeat_s"] / max(calibration, 1e-9)))

    pass_calls: list[list[TimedCall]] = []
    pass_times: list[float] = []
    pruned: str | None = None
    deadline = time.perf_counter() + workload["max_measure_s"]
    phases.enter("timing repeats", repeat=1, of=workload["max_repeats"])
    while len(pass_times) < workload["max_repeats"] and pruned is None:
        stall = timing_noise(len(pass_times), calibration * loops)  # 0 unless a test injects noise
        repeat_calls = []
        for _ in range(loops):
            for batch in batches:
                repeat_calls.append(timed_generate(model, batch, gen_config, device, stall)[0])
                stall = 0.0
        pass_calls.append(repeat_calls)
        pass_times.append(consensus(sum(call.e2e_s for call in repeat_calls)))
        phases.update(repeat=len(pass_times) + 1, spread=_spread(pass_times[-3:]))
        if repeats_agree(pass_times) or consensus(float(time.perf_counter() > deadline)):
            break
        if stop_check is not None:  # a pass that did not settle the figures: is the rest worth timing?
            pruned = stop_check([[(call.e2e_s, call.ttft_s) for call in calls]
                                 for calls in [calibration_calls, *pass_calls]])

    figures = window_figures([[(call.e2e_s, call.ttft_s) for call in calls] for calls in pass_calls],
                             batch_size * new_tokens, new_tokens, pass_times)
    weights = model_bytes(model)
    activation, ops, memory_s = None, set(), 0.0
    if pruned is None:
        # Memory: one more call of the same shape, alone, so its peak is this config's own (design §5).
        phases.enter("measuring peak memory")
        memory_start = time.perf_counter()
        activation, ops, _ = generation_peak(lambda: timed_generate(model, batches[0], gen_config, device), device)
        memory_s = time.perf_counter() - memory_start
    metrics = {**figures, "peak_mem_mb": None if activation is None else (weights + activation) / MB,
               "warmup_s": warmup_s, "repeats": len(pass_times)}
    info = {
        "stable": repeats_agree(pass_times),
        "batches_per_pass": len(batches),
        "passes_per_repeat": loops,
        "pass_times_s": pass_times,
        "window": agreeing_window(len(pass_times)),
        "prompt_tokens": int(batches[0]["input_ids"].shape[1]),
        "output_shape": list(output.sequences.shape),
        "weights_mb": weights / MB,
        "activation_peak_mb": None if activation is None else activation / MB,
        "worker_peak_rss_mb": peak_rss_mb(),  # the whole process, other kept models included: not the config's
        "attention_kernel": _attention_kernel(ops) if pruned is None else None,  # read off the memory call's profile
        "cache_class": type(getattr(output, "cache", None) or output.past_key_values).__name__,
        "attn_implementation": model.config._attn_implementation,
        "compiled": getattr(model, "_compiled_call", None) is not None and config["compile"],
        "graphs_compiled_in_warmup": graphs_compiled,
        "compile_cache_hits": compile_cache_hits,
        "memory_call_s": memory_s,
        "inference_s": warmup_s + calibration_s + memory_s + sum(sum(call.e2e_s for call in calls)
                                                                 for calls in pass_calls),
    }
    if pruned is not None:
        info[PRUNED] = {"stage": "timing", "reason": pruned}
    return metrics, info
