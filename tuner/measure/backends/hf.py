"""The transformers backend: keeps loaded models, measures a config, scores it against the reference."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from typing import Any

import torch

from tuner.measure.backends.hf_accuracy import Reference, agreement, greedy_sequences, teacher_forced_logprobs
from tuner.measure.backends.hf_models import DTYPES, load_model, load_tokenizer, model_config
from tuner.measure.backends.hf_timing import measure_generation
from tuner.measure.backends.infeasible import Infeasible
from tuner.measure.backends.knobs import HF_KNOB_DEFAULTS
from tuner.measure.backends.shard_group import ShardGroup
from tuner.measure.backends.tensor_parallel import plan_shard


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU; asking for CUDA without one is infeasible."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise Infeasible("device cuda requested but torch sees no CUDA device")
    return device


def check_shards(shards: int, device: str) -> None:
    """Infeasible when there are fewer devices (GPUs, or CPU cores for the CPU) than shards."""
    if device == "cuda":
        available, unit = torch.cuda.device_count(), "GPUs"
    else:
        available, unit = len(os.sched_getaffinity(0)), "CPU cores"
    if shards > available:
        raise Infeasible(f"shard_count {shards} exceeds the {available} {unit} visible here")


def check_dtype(dtype: str, device: str) -> None:
    """Infeasible when the device has no kernels for ``dtype`` (tried on a small matmul)."""
    try:
        probe = torch.ones(4, 4, dtype=DTYPES[dtype], device=device)
        (probe @ probe).sum().item()
    except RuntimeError as error:
        raise Infeasible(f"{dtype} is not supported on {device}: {error}") from None


class HFBackend:
    """Measures configs of one or more tasks, reusing loaded weights across configs (LRU of ``max_models``)."""

    def __init__(self, max_models: int = 3):
        self.max_models = max_models
        self._models: OrderedDict[tuple, tuple[Any, int]] = OrderedDict()
        self._tokenizers: dict[str, Any] = {}
        self._references: dict[str, Reference] = {}
        self._accuracy: dict[str, dict[str, float]] = {}
        self._shards: ShardGroup | None = None

    def _tokenizer(self, model_spec: dict[str, Any]) -> Any:
        key = repr(sorted(model_spec.items()))
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(model_spec)
        return self._tokenizers[key]

    def _model(self, task: dict[str, Any], weights: dict[str, Any], device: str) -> tuple[Any, int, bool]:
        """(model, quantized module count, freshly loaded?) for the knobs that change the weights."""
        key = (repr(sorted(task["model"].items())), task["seed"], device, weights["dtype"], weights["quantization"])
        if key in self._models:
            self._models.move_to_end(key)
            return *self._models[key], False
        while len(self._models) >= self.max_models:
            self._models.popitem(last=False)
        vocab = len(self._tokenizer(task["model"]))
        self._models[key] = load_model(task["model"], weights["dtype"], weights["quantization"], device, task["seed"],
                                       vocab)
        return *self._models[key], True

    def _reference(self, task: dict[str, Any], device: str) -> Reference:
        key = repr((task["id"], sorted(task["model"].items()), task["accuracy"], device))
        if key not in self._references:
            spec = task["accuracy"]
            reference = {**HF_KNOB_DEFAULTS, **spec["reference"]}
            model, _, _ = self._model(task, reference, device)
            model.set_attn_implementation(reference["attn_implementation"])
            tokenizer = self._tokenizer(task["model"])
            sequences = greedy_sequences(model, tokenizer, spec["eval_prompts"], spec["new_tokens"],
                                         task["workload"]["chat_template"], device)
            logprobs = teacher_forced_logprobs(model, sequences, tokenizer.pad_token_id, device)
            self._references[key] = Reference(sequences, logprobs)
        return self._references[key]

    @staticmethod
    def _accuracy_key(task: dict[str, Any], config: dict[str, Any], device: str) -> str:
        return repr((task["id"], sorted(task["model"].items()), device, config["dtype"], config["quantization"],
                     config["attn_implementation"], config["shard_count"]))

    def _accuracy_of(self, task: dict[str, Any], config: dict[str, Any], device: str) -> dict[str, float]:
        key = self._accuracy_key(task, config, device)
        if key not in self._accuracy:
            reference = self._reference(task, device)
            model, _, _ = self._model(task, config, device)
            model.set_attn_implementation(config["attn_implementation"])
            tokenizer = self._tokenizer(task["model"])
            self._accuracy[key] = agreement(reference, teacher_forced_logprobs(model, reference.sequences,
                                                                               tokenizer.pad_token_id, device))
        return self._accuracy[key]

    def _group(self, world: int, device: str) -> ShardGroup:
        """The live rank group for ``world`` shards (one group at a time: a new shard count replaces it)."""
        if self._shards is not None and (self._shards.world != world or not self._shards.alive):
            self._shards.close(force=not self._shards.alive)
            self._shards = None
        if self._shards is None:
            self._shards = ShardGroup(world, device)
        return self._shards

    def _measure_sharded(self, task: dict[str, Any], config: dict[str, Any], device: str,
                         rank_fault: tuple[int, str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tensor-parallel: the ranks time the sharded model and score it against the unsharded reference."""
        world = config["shard_count"]
        check_shards(world, device)
        plan_shard(model_config(task["model"], len(self._tokenizer(task["model"]))), 0, world)
        accuracy_start = time.perf_counter()
        reference = self._reference(task, device)
        key = self._accuracy_key(task, config, device)
        request: dict[str, Any] = {"task": task, "config": config,
                                   "sequences": None if key in self._accuracy else reference.sequences}
        if rank_fault is not None:
            request["fault_rank"], request["fault"] = rank_fault
        reference_s = time.perf_counter() - accuracy_start  # the ranks report their own forward passes
        group = self._group(world, device)
        try:
            answer = group.measure(request)
        except Exception:
            self._shards = None  # the group closed itself: the next sharded config starts fresh ranks
            raise
        if answer["logprobs"] is not None:
            scoring_start = time.perf_counter()
            self._accuracy[key] = agreement(reference, answer["logprobs"])
            reference_s += time.perf_counter() - scoring_start
        metrics, info = answer["metrics"], answer["info"]
        metrics.update(self._accuracy[key])
        metrics["task_accuracy"] = None
        info.update({"device": device, "accuracy_s": reference_s})
        return metrics, info

    def close(self) -> None:
        """Stop the rank processes of a tensor-parallel group, if any."""
        if self._shards is not None:
            self._shards.close()
            self._shards = None

    def measure(self, task: dict[str, Any], config: dict[str, Any],
                rank_fault: tuple[int, str] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Measure one config for real; returns (metrics, info). Raises Infeasible or the failure itself.

        ``rank_fault`` (tests only) injects a fault into one rank of a tensor-parallel group.
        """
        config = {**HF_KNOB_DEFAULTS, **config}
        if config["compile"] and config["cache_implementation"] != "static":
            raise Infeasible("compile needs cache_implementation static")
        device = resolve_device(task["device"])
        check_dtype(config["dtype"], device)
        if config["shard_count"] > 1:
            return self._measure_sharded(task, config, device, rank_fault)

        load_start = time.perf_counter()
        model, quantized_modules, loaded = self._model(task, config, device)
        load_s = time.perf_counter() - load_start

        accuracy_start = time.perf_counter()
        accuracy = self._accuracy_of(task, config, device)
        accuracy_s = time.perf_counter() - accuracy_start

        model.set_attn_implementation(config["attn_implementation"])
        tokenizer = self._tokenizer(task["model"])
        metrics, info = measure_generation(model, tokenizer, task["workload"], config, device)
        metrics.update(accuracy)
        metrics["task_accuracy"] = None
        info.update({"device": device, "loaded_weights": loaded, "load_s": load_s, "accuracy_s": accuracy_s,
                     "quantized_modules": quantized_modules,
                     "weight_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")})
        return metrics, info
