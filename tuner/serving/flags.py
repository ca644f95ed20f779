"""The one mapping from infertune's serving knobs to each engine's flags (design §10), for launching and exporting.

A config is a dict of canonical, engine-neutral knobs (any subset). ``engine_options`` turns it into one engine's
options (long CLI option names → value, ``True`` for a bare switch; for TensorRT-LLM the fields of its
``--config`` YAML), environment variables and gaps: one sentence per knob the engine cannot express. A knob the
config leaves out is left to the engine's default. ``launch_command`` and the exporters both build on it, so a
server infertune measures and the files it exports cannot drift apart.

``kv_cache_blocks`` counts blocks of ``block_size`` tokens (0: the engine sizes its cache itself). Engines that
count their cache in blocks (vLLM, transformers) take it as is, in their default block size when ``block_size``
is absent; engines that count tokens (SGLang, TGI, TensorRT-LLM) get ``kv_cache_blocks * block_size`` and need
``block_size`` to convert.
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml

ENGINES = ("vllm", "sglang", "tgi", "trtllm", "transformers")
SERVING_KNOBS = ("max_batch_tokens", "max_num_seqs", "kv_cache_blocks", "block_size", "prefix_caching", "scheduler",
                 "async_batching", "compile", "dtype", "quantization", "shard_count")
CONTINUOUS_BATCHING_KNOBS = SERVING_KNOBS[:7]  # only a continuous-batching (serving) config holds these
DTYPES = ("float32", "bfloat16", "float16")
QUANTIZATIONS = ("none", "int8-dynamic", "int8-weight-only", "int4-weight-only")
SCHEDULERS = ("fifo", "prefill_first")
ENGINE_NAMES = {"vllm": "vLLM", "sglang": "SGLang", "tgi": "TGI", "trtllm": "TensorRT-LLM",
                "transformers": "transformers serve"}
TRTLLM_CONFIG = "trtllm.yaml"  # the file trtllm-serve's --config reads (written next to where it runs)
TRANSFORMERS_WRAPPER = "set through ContinuousBatchingConfig by infertune's wrapper"
NOT_CB_COMPILE = " (its --compile only gives the non-continuous-batching path a static cache)"
CB_DEFAULTS = {"allow_block_sharing": True, "scheduler_type": "fifo", "default_compile_level": 0}  # in 5.24
# infertune's static-batch knobs no serving engine takes, and why (per engine)
STATIC_ONLY = {
    "vllm": {"attn_implementation": "vLLM picks its own paged-attention backend",
             "cache_implementation": "vLLM always uses its paged KV cache"},
    "sglang": {"attn_implementation": "--attention-backend chooses among SGLang's own kernels",
               "cache_implementation": "SGLang always uses its radix KV cache"},
    "tgi": {"attn_implementation": "TGI picks flash/paged attention itself",
            "cache_implementation": "TGI always uses its paged KV cache"},
    "trtllm": {"attn_implementation": "TensorRT-LLM uses its own attention backend",
               "cache_implementation": "TensorRT-LLM always uses its paged KV cache"},
    "transformers": {"cache_implementation": "continuous batching always uses its paged KV cache"},
}
# infertune's weight-only quantizations and how SGLang's nearest online setting (fp8) differs from each
SGLANG_WEIGHT_ONLY = {"int8-weight-only": "the same weight memory as int8",
                      "int4-weight-only": "about twice int4's weight memory (an int4 AWQ/GPTQ checkpoint, loaded "
                                          "without --quantization, is the closer match)"}
TGI_QUANTIZE = {"int8-weight-only": "eetq"}  # TGI's int8 weight-only kernel


@dataclass(frozen=True)
class EngineOptions:
    """One engine's settings for a config: options (CLI long names, or trtllm YAML fields), env vars, gaps."""

    options: dict[str, Any] = field(default_factory=dict)
    env: dict[str, str] = field(default_factory=dict)
    gaps: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LaunchLine:
    """How to start one engine's server: argv, extra environment, a config file to write first, the gaps."""

    argv: list[str]
    env: dict[str, str]
    config_file: tuple[str, str] | None  # (name, YAML text), written in the server's working directory
    gaps: list[str]


def gap(knob: str, value: Any, stack: str, why: str) -> str:
    """The sentence written (and warned) for a knob the stack cannot express."""
    return f"{knob}={value}: no {stack} equivalent ({why}); not applied"


def is_serving_config(config: dict[str, Any]) -> bool:
    """Whether the config holds continuous-batching knobs (it was measured on a serving engine)."""
    return any(knob in config for knob in CONTINUOUS_BATCHING_KNOBS)


def option_argv(options: dict[str, Any]) -> list[str]:
    """``--key value`` pairs (a bare ``--key`` for true) for flat options."""
    argv: list[str] = []
    for key, value in options.items():
        argv += [f"--{key}"] if value is True else [f"--{key}", str(value)]
    return argv


def _check(config: dict[str, Any]) -> None:
    """Refuse values no engine mapping is defined for (a typo must not launch a different server)."""
    allowed = {"dtype": DTYPES, "quantization": QUANTIZATIONS, "scheduler": SCHEDULERS}
    for knob, choices in allowed.items():
        if knob in config and config[knob] not in choices:
            raise ValueError(f"{knob}={config[knob]!r}: expected one of {', '.join(choices)}")
    for knob in ("prefix_caching", "async_batching", "compile"):
        if knob in config and not isinstance(config[knob], bool):
            raise ValueError(f"{knob}={config[knob]!r}: expected true or false")
    for knob in ("max_batch_tokens", "max_num_seqs", "kv_cache_blocks", "block_size", "shard_count", "batch_size"):
        value = config.get(knob)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or value < (0 if knob == "kv_cache_blocks" else 1)):
            raise ValueError(f"{knob}={value!r}: expected a positive integer")


class _Mapping:
    """The options being built for one engine, and the gap sentences."""

    def __init__(self, engine: str, config: dict[str, Any]) -> None:
        self.engine, self.config, self.stack = engine, config, ENGINE_NAMES[engine]
        self.options: dict[str, Any] = {}
        self.env: dict[str, str] = {}
        self.gaps: list[str] = []

    def set(self, option: str, knob: str) -> None:
        """``option`` takes the knob's value when the config holds the knob."""
        if knob in self.config:
            self.options[option] = self.config[knob]

    def off(self, knob: str, option: str, value: Any = True) -> None:
        """Write ``option: value`` when the config turns ``knob`` off (on is each of these engines' default)."""
        if self.config.get(knob) is False:
            self.options[option] = value

    def gap(self, knob: str, why: str) -> None:
        """The knob has no equivalent here."""
        self.gaps.append(gap(knob, self.config[knob], self.stack, why))

    def sequences(self, *options: str) -> None:
        """Sequences in flight: ``max_num_seqs``, or a static config's ``batch_size`` (a cap on concurrency)."""
        seqs = self.config.get("max_num_seqs", self.config.get("batch_size"))
        if seqs is None:
            return
        for option in options:
            self.options[option] = seqs
        if "max_num_seqs" in self.config and "batch_size" in self.config:
            self.gap("batch_size", "a static batch; max_num_seqs already sets the sequences in flight")

    def kv_tokens(self) -> int | None:
        """KV cache size in tokens (blocks × block size), or None with a gap when it cannot be converted."""
        blocks = self.config.get("kv_cache_blocks", 0)
        if not blocks:
            return None
        if "block_size" not in self.config:
            self.gap("kv_cache_blocks", f"{self.stack} sizes its KV cache in tokens and the config gives no "
                                        "block_size to convert blocks into tokens")
            return None
        return blocks * self.config["block_size"]

    def scheduler(self, fifo: tuple[str, str] | None, why_not_prefill_first: str) -> None:
        """``fifo`` → the engine's first-come-first-served setting (None: already its only order)."""
        value = self.config.get("scheduler")
        if value == "fifo" and fifo is not None:
            self.options[fifo[0]] = fifo[1]
        elif value == "prefill_first":
            self.gap("scheduler", why_not_prefill_first)

    def rest(self, mapped: tuple[str, ...]) -> None:
        """Gaps for the static-only knobs and any knob this module does not know."""
        for knob in self.config:
            if knob not in mapped:
                self.gap(knob, STATIC_ONLY[self.engine].get(knob, "not a knob infertune maps to serving engines"))

    def result(self) -> EngineOptions:
        """The finished options."""
        return EngineOptions(options=self.options, env=self.env, gaps=self.gaps)


def _weight_only(quantization: Any) -> bool:
    return quantization in ("int8-weight-only", "int4-weight-only")


def _vllm(m: _Mapping) -> None:
    config = m.config
    m.set("tensor-parallel-size", "shard_count")
    m.set("dtype", "dtype")
    m.sequences("max-num-seqs")
    if config.get("compile") is False:
        m.options["enforce-eager"] = True  # no torch.compile, no CUDA graphs: what infertune measured
    quantization = config.get("quantization", "none")
    if _weight_only(quantization):
        m.options["quantization"] = "torchao"
        m.gaps.append(f"quantization={quantization}: vLLM's torchao method loads a checkpoint already quantized "
                      "with torchao; save the weights quantized that way first")
    elif quantization == "int8-dynamic":
        m.gap("quantization", "torch dynamic quantization is CPU-only")
    m.set("max-num-batched-tokens", "max_batch_tokens")
    if config.get("kv_cache_blocks"):
        m.options["num-gpu-blocks-override"] = config["kv_cache_blocks"]
    m.set("block-size", "block_size")
    if "prefix_caching" in config:  # `no-...: true` is the negation both in argv and in a --config YAML
        m.options["enable-prefix-caching" if config["prefix_caching"] else "no-enable-prefix-caching"] = True
    m.scheduler(("scheduling-policy", "fcfs"), "vLLM's --scheduling-policy is fcfs or priority, and its "
                                               "scheduler serves running decodes before new prefills")
    if "async_batching" in config:
        m.options["async-scheduling" if config["async_batching"] else "no-async-scheduling"] = True


def _sglang(m: _Mapping) -> None:
    config = m.config
    m.set("tp-size", "shard_count")
    m.set("dtype", "dtype")
    m.sequences("max-running-requests")
    if config.get("compile") is True:
        m.options["enable-torch-compile"] = True
    elif config.get("compile") is False:  # SGLang captures CUDA graphs unless told not to
        m.options["cuda-graph-backend-decode"] = "disabled"
        m.options["cuda-graph-backend-prefill"] = "disabled"
    quantization = config.get("quantization", "none")
    if quantization in SGLANG_WEIGHT_ONLY:
        m.options["quantization"] = "fp8"
        m.gaps.append(f"quantization={quantization}: SGLang has no torchao weight-only setting any more "
                      f"(--torchao-config was removed); written instead: the nearest one it applies to a plain "
                      f"checkpoint, --quantization fp8 (online 8-bit weights, and activations too), "
                      f"{SGLANG_WEIGHT_ONLY[quantization]}; measure it before relying on infertune's figures")
    elif quantization == "int8-dynamic":
        m.gap("quantization", "torch dynamic quantization is CPU-only")
    if "max_batch_tokens" in config:  # tokens per step: the prefill chunk and the prefill batch
        m.set("chunked-prefill-size", "max_batch_tokens")
        m.set("max-prefill-tokens", "max_batch_tokens")
    tokens = m.kv_tokens()
    if tokens is not None:
        m.options["max-total-tokens"] = tokens
    m.set("page-size", "block_size")
    m.off("prefix_caching", "disable-radix-cache")  # the radix cache (prefix caching)
    m.scheduler(("schedule-policy", "fcfs"), "SGLang's --schedule-policy orders waiting requests (fcfs, lpm, "
                                             "...) but has no prefill-first policy")
    m.off("async_batching", "disable-overlap-schedule")  # the overlap scheduler


def _tgi(m: _Mapping) -> None:
    config = m.config
    m.set("num-shard", "shard_count")
    m.sequences("max-concurrent-requests", "max-batch-size")
    quantization = config.get("quantization", "none")
    if quantization in TGI_QUANTIZE:
        m.options["quantize"] = TGI_QUANTIZE[quantization]
    elif quantization != "none":
        m.gap("quantization", "no matching --quantize method")
    if "dtype" in config:
        if "quantize" in m.options:
            m.gaps.append(f"dtype={config['dtype']}: TGI does not take --dtype together with --quantize; "
                          "not applied")
        elif config["dtype"] in ("float16", "bfloat16"):
            m.options["dtype"] = config["dtype"]
        else:
            m.gap("dtype", "--dtype accepts float16 or bfloat16 only")
    if config.get("compile") is False:
        m.options["cuda-graphs"] = 0  # what infertune measured: no graph capture
    m.set("max-batch-prefill-tokens", "max_batch_tokens")
    tokens = m.kv_tokens()
    if tokens is not None:
        m.options["max-batch-total-tokens"] = tokens
    if "block_size" in config:
        m.gap("block_size", "TGI's block size follows its attention backend and has no option")
    if "prefix_caching" in config:
        m.env["PREFIX_CACHING"] = "1" if config["prefix_caching"] else "0"
    m.scheduler(None, "TGI's router serves its queue first come first served, tuned only by "
                      "--waiting-served-ratio and --max-waiting-tokens")
    if "async_batching" in config:
        m.gap("async_batching", "TGI has no switch for overlapping scheduling with the model's steps")


def _trtllm(m: _Mapping) -> None:
    config = m.config
    m.set("tensor_parallel_size", "shard_count")
    m.set("dtype", "dtype")
    m.sequences("max_batch_size")
    m.set("max_num_tokens", "max_batch_tokens")
    kv_cache: dict[str, Any] = {"free_gpu_memory_fraction": 0.9}
    tokens = m.kv_tokens()
    if tokens is not None:
        kv_cache["max_tokens"] = tokens
    if "block_size" in config:
        kv_cache["tokens_per_block"] = config["block_size"]
    if "prefix_caching" in config:
        kv_cache["enable_block_reuse"] = config["prefix_caching"]
    m.options["kv_cache_config"] = kv_cache
    quantization = config.get("quantization", "none")
    if quantization != "none":
        m.gap("quantization", "it serves checkpoints quantized beforehand (e.g. with ModelOpt)")
    if config.get("compile") is True:  # the default (pytorch) backend: torch.compile, CUDA graphs stay on
        m.options["torch_compile_config"] = {"enable_fullgraph": True}
    elif config.get("compile") is False:  # no torch.compile (off by default there) and no graph capture
        m.options["cuda_graph_config"] = None
    m.scheduler(None, "scheduler_config.capacity_scheduler_policy chooses how requests fit in memory, not a "
                      "prefill-first order")
    m.off("async_batching", "disable_overlap_scheduler")  # the overlap scheduler


def _transformers(m: _Mapping) -> None:
    config = m.config
    m.set("dtype", "dtype")
    m.set("attn-implementation", "attn_implementation")
    if config.get("compile") is True:
        m.options["compile"] = True
    m.set("cb-block-size", "block_size")
    if config.get("kv_cache_blocks"):
        m.options["cb-num-blocks"] = config["kv_cache_blocks"]
    m.set("cb-max-batch-tokens", "max_batch_tokens")
    if config.get("compile") is False:
        m.options["no-cb-use-cuda-graph"] = True
    if config.get("quantization", "none") != "none":
        m.gap("quantization", "transformers serve quantizes with bitsandbytes only (--quantization bnb-4bit, "
                              "bnb-8bit)")
    if config.get("shard_count", 1) > 1:
        m.gap("shard_count", "transformers serve has no tensor-parallel option")
    fields, _ = transformers_cb_fields(config)
    for knob, name in (("max_num_seqs", "max_requests_per_batch"), ("batch_size", "max_requests_per_batch"),
                       ("prefix_caching", "allow_block_sharing"), ("async_batching", "use_async_batching"),
                       ("scheduler", "scheduler_type"), ("compile", "default_compile_level")):
        if knob in config and name in fields and fields[name] != CB_DEFAULTS.get(name, "unset"):
            m.gaps.append(f"{knob}={config[knob]}: no transformers serve flag for {name}={fields[name]}"
                          f"{NOT_CB_COMPILE if knob == 'compile' else ''}; {TRANSFORMERS_WRAPPER}")


BUILDERS: dict[str, Callable[[_Mapping], None]] = {"vllm": _vllm, "sglang": _sglang, "tgi": _tgi,
                                                   "trtllm": _trtllm, "transformers": _transformers}
MAPPED = (*SERVING_KNOBS, "batch_size")
MAPPED_BY = {"transformers": (*MAPPED, "attn_implementation")}


def engine_options(engine: str, config: dict[str, Any]) -> EngineOptions:
    """One engine's options, environment and gaps for a config (knobs left out keep the engine's defaults)."""
    if engine not in BUILDERS:
        raise ValueError(f"unknown serving engine {engine!r}; known: {', '.join(ENGINES)}")
    _check(config)
    mapping = _Mapping(engine, config)
    BUILDERS[engine](mapping)
    mapping.rest(MAPPED_BY.get(engine, MAPPED))
    return mapping.result()


def trtllm_yaml(options: dict[str, Any]) -> str:
    """The YAML text trtllm-serve's ``--config`` reads for these options."""
    return yaml.safe_dump(options, sort_keys=False)


def launch_command(engine: str, model: str, config: dict[str, Any], host: str, port: int) -> LaunchLine:
    """The command line (and env, and config file) that starts ``engine``'s server with this config."""
    if engine == "transformers":
        return LaunchLine(argv=transformers_serve_argv(model, config, host, port), env={}, config_file=None,
                          gaps=engine_options(engine, config).gaps)
    mapped = engine_options(engine, config)
    address = ["--host", host, "--port", str(port)]
    config_file = None
    if engine == "vllm":
        argv = ["vllm", "serve", model, *address, *option_argv(mapped.options)]
    elif engine == "sglang":
        argv = ["python", "-m", "sglang.launch_server", "--model-path", model, *address,
                *option_argv(mapped.options)]
    elif engine == "tgi":
        argv = ["text-generation-launcher", "--model-id", model, "--hostname", host, "--port", str(port),
                *option_argv(mapped.options)]
    else:  # trtllm: the serving knobs live in the YAML (it wins over flags and rejects unknown keys)
        argv = ["trtllm-serve", model, *address, "--config", TRTLLM_CONFIG]
        config_file = (TRTLLM_CONFIG, trtllm_yaml(mapped.options))
    return LaunchLine(argv=argv, env=dict(mapped.env), config_file=config_file, gaps=list(mapped.gaps))


def transformers_cb_fields(config: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """``ContinuousBatchingConfig`` keyword arguments for a config, and the knobs transformers cannot express."""
    _check(config)
    fields: dict[str, Any] = {}
    for knob, name in (("block_size", "page_size"), ("max_batch_tokens", "max_batch_tokens"),
                       ("max_num_seqs", "max_requests_per_batch"), ("prefix_caching", "allow_block_sharing"),
                       ("async_batching", "use_async_batching"), ("scheduler", "scheduler_type")):
        if knob in config:
            fields[name] = config[knob]
    if "max_num_seqs" not in config and "batch_size" in config:
        fields["max_requests_per_batch"] = config["batch_size"]
    if config.get("kv_cache_blocks"):
        fields["num_blocks"] = config["kv_cache_blocks"]
    if "compile" in config:
        fields["default_compile_level"] = 1 if config["compile"] else 0
        if not config["compile"]:
            fields["use_cuda_graph"] = False
    gaps = []
    stack = "transformers continuous batching"
    if config.get("quantization", "none") != "none":
        gaps.append(gap("quantization", config["quantization"], stack, "ContinuousBatchingConfig has no "
                        "quantization; transformers serve quantizes with bitsandbytes only"))
    if config.get("shard_count", 1) > 1:
        gaps.append(gap("shard_count", config["shard_count"], stack, "transformers serve has no tensor-parallel "
                                                                     "option"))
    return fields, gaps


def transformers_serve_argv(model: str, config: dict[str, Any], host: str, port: int) -> list[str]:
    """The real ``transformers serve --continuous-batching`` command for a config, with the flags that exist."""
    mapped = engine_options("transformers", config)
    return ["transformers", "serve", model, "--continuous-batching", "--host", host, "--port", str(port),
            *option_argv(mapped.options)]


def command_text(argv: list[str], env: dict[str, str] | None = None) -> str:
    """A command line as a shell would read it, with its environment variables first."""
    return " ".join([*(f"{key}={shlex.quote(value)}" for key, value in (env or {}).items()), shlex.join(argv)])
