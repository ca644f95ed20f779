"""The transformers backend: keeps loaded models, measures a config, scores it against the reference."""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch

from tuner.measure import phases
from tuner.measure.backends import accuracy_store
from tuner.measure.backends.hf_accuracy import Reference, agreement, greedy_sequences, teacher_forced_logprobs
from tuner.measure.backends.hf_features import hardware_features, model_features, workload_features
from tuner.measure.backends.hf_models import DTYPES, float32_bytes, load_model, load_tokenizer, model_config
from tuner.measure.backends.hf_timing import build_batches, measure_generation
from tuner.measure.backends.infeasible import Infeasible
from tuner.measure.backends.model_store import HOST_WORKERS
from tuner.measure.backends.shard_group import ShardGroup
from tuner.measure.backends.tensor_parallel import plan_shard
from tuner.measure.early_stop import PRUNED, StopRule
from tuner.measure.feasibility import Machine, knob_defaults, why_infeasible
from tuner.measure.memory import MB, available_bytes, evict_least_recent, model_bytes, release_freed

MEMORY_SHARE = 0.5  # kept models may fill this share of the memory free when the first one loads


def memory_share() -> float:
    """The share of free memory this worker's kept models may fill: MEMORY_SHARE split among the host's workers."""
    return MEMORY_SHARE / max(1, int(os.environ.get(HOST_WORKERS) or 1))
# Accuracy is scored teacher-forced with the plain forward, also for compile: true; tests show the compiled
# forward agrees within KL 1e-4 here (tests/unit/measure/test_accuracy_paths.py), and the record says which path ran.
ACCURACY_PATH = "eager-forward"
ACCURACY_FIGURES = ("top1_agree", "kl")  # what a weights variant's teacher-forced scoring gives
LABELED_FIGURES = ("task_accuracy",)  # what its labeled set gives
SOURCES = ("memory", "disk", "computed")  # where figures came from, cheapest first


@dataclass
class ReferenceCost:
    """What one measurement paid for the reference's outputs and its own labeled accuracy (info's reference_*)."""

    source: str | None = None  # the costliest source of any part; None while no part was needed
    seconds: float = 0.0  # spent computing them (a read from memory or disk counts 0)

    def note(self, source: str, seconds: float = 0.0) -> None:
        """One part of the reference came from ``source`` and cost ``seconds``."""
        self.source = source if self.source is None else max(self.source, source, key=SOURCES.index)
        self.seconds += seconds

    def info(self, figures_source: str) -> dict[str, Any]:
        """The measurement's ``reference_s`` and ``reference_cached``; when no part of the reference was needed,
        it reached this measurement through the config's figures, so it came from where they came from."""
        return {"reference_s": self.seconds, "reference_cached": self.source or figures_source}


def resolve_device(device: str) -> str:
    """``auto`` picks CUDA when torch sees a GPU; asking for CUDA without one is infeasible."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise Infeasible("device cuda requested but torch sees no CUDA device")
    return device


def check_dtype(dtype: str, device: str) -> None:
    """Infeasible when the device has no kernels for ``dtype`` (tried on a small matmul)."""
    try:
        probe = torch.ones(4, 4, dtype=DTYPES[dtype], device=device)
        (probe @ probe).sum().item()
    except RuntimeError as error:
        raise Infeasible(f"{dtype} is not supported on {device}: {error}") from None


OOM_MARKERS = ("out of memory", "can't allocate memory", "cannot allocate memory")


def is_oom(error: BaseException) -> bool:
    """Whether ``error`` is an allocation failure (CUDA or host memory)."""
    return isinstance(error, torch.OutOfMemoryError | MemoryError) or any(
        marker in str(error).lower() for marker in OOM_MARKERS)


def labeled_spec(task: dict[str, Any]) -> dict[str, Any] | None:
    """The task's labeled set ({"items": [...], "new_tokens": n}), or None when it has none."""
    return (task.get("accuracy") or {}).get("labeled")


class HFBackend:
    """Measures configs of one or more tasks, reusing loaded weights across configs.

    Kept models are evicted least recently used first when their bytes plus the next model's would exceed
    ``memory_budget`` (default: ``memory_share()`` of the memory free at the first load), and all of them when a
    config runs out of memory anyway (it is then measured again alone): no config is ``oom`` because of
    other cached models.
    """

    def __init__(self, memory_budget: int | None = None):
        self.memory_budget = memory_budget
        self.memory_free_at_budget: int | None = None  # the free memory the budget was a share of
        self._models: OrderedDict[tuple, tuple[Any, int, int]] = OrderedDict()  # (model, quantized, bytes)
        self._float32_bytes: dict[str, int] = {}
        self._tokenizers: dict[str, Any] = {}
        self._references: dict[str, Reference] = {}
        # Accuracy figures by weights variant: memory first, then the disk store (accuracy_store), once per task.
        self._accuracy: dict[str, dict[str, float]] = {}
        self._labeled: dict[str, dict[str, float]] = {}
        self._store_keys: dict[str, str] = {}
        self._reference_cost = ReferenceCost()  # the current measurement's
        self._features: dict[str, dict[str, Any]] = {}
        self._shards: ShardGroup | None = None

    def _tokenizer(self, model_spec: dict[str, Any]) -> Any:
        key = repr(sorted(model_spec.items()))
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(model_spec)
        return self._tokenizers[key]

    @property
    def kept_bytes(self) -> int:
        """Bytes of every model kept loaded."""
        return sum(size for _, _, size in self._models.values())

    def _make_room(self, needed: int, device: str) -> None:
        """Evict least recently used models until ``needed`` more bytes fit the budget."""
        if self.memory_budget is None:
            self.memory_free_at_budget = available_bytes(device)
            self.memory_budget = int(memory_share() * self.memory_free_at_budget)
        evict_least_recent(self._models, lambda entry: entry[2], needed, self.memory_budget, device)

    def drop_models(self, device: str) -> bool:
        """Unload every kept model; whether there was any."""
        had = bool(self._models)
        self._models.clear()
        release_freed(device)
        return had

    def _model(self, task: dict[str, Any], weights: dict[str, Any], device: str) -> tuple[Any, int, bool]:
        """(model, quantized module count, freshly loaded?) for the knobs that change the weights."""
        key = (repr(sorted(task["model"].items())), task["seed"], device, weights["dtype"], weights["quantization"])
        if key in self._models:
            self._models.move_to_end(key)
            model, quantized, _ = self._models[key]
            return model, quantized, False
        vocab = len(self._tokenizer(task["model"]))
        self._make_room(self._float32_size(task["model"], vocab), device)
        model, quantized = load_model(task["model"], weights["dtype"], weights["quantization"], device, task["seed"],
                                      vocab)
        self._models[key] = (model, quantized, model_bytes(model))
        return model, quantized, True

    def _float32_size(self, model_spec: dict[str, Any], vocab: int) -> int:
        key = repr(sorted(model_spec.items()))
        if key not in self._float32_bytes:
            self._float32_bytes[key] = float32_bytes(model_spec, vocab)
        return self._float32_bytes[key]

    def features(self, task: dict[str, Any]) -> dict[str, Any]:
        """The task's model, device and workload features (design §14), worked out once per task."""
        key = repr((sorted(task["model"].items()), task["device"], task["workload"]))
        if key not in self._features:
            device = resolve_device(task["device"])
            tokenizer = self._tokenizer(task["model"])
            vocab = len(tokenizer)
            parameters = self._float32_size(task["model"], vocab) // 4
            prompt_tokens = int(build_batches(tokenizer, task["workload"], 1, "cpu")[0]["input_ids"].shape[1])
            self._features[key] = {"model": model_features(model_config(task["model"], vocab), parameters),
                                   "hardware": hardware_features(device),
                                   "workload": workload_features(task["workload"], prompt_tokens)}
        return self._features[key]

    @staticmethod
    def _reference_config(task: dict[str, Any]) -> dict[str, Any]:
        return {**knob_defaults(), **task["accuracy"]["reference"]}

    @staticmethod
    def _reference_key(task: dict[str, Any], device: str) -> str:
        return repr((task["id"], sorted(task["model"].items()), task["seed"], task["accuracy"],
                     task["workload"]["chat_template"], device))

    def _store_key(self, task: dict[str, Any], device: str) -> str:
        """The task's key in the disk store (its fingerprint is read once per task)."""
        key = self._reference_key(task, device)
        if key not in self._store_keys:
            self._store_keys[key] = accuracy_store.task_key(task, device, self._reference_config(task))
        return self._store_keys[key]

    def _reference(self, task: dict[str, Any], device: str) -> Reference:
        """The reference's greedy continuations and log-probabilities: from memory, disk, or computed."""
        key = self._reference_key(task, device)
        if key in self._references:
            self._reference_cost.note("memory")
            return self._references[key]
        start = time.perf_counter()
        width = model_config(task["model"], len(self._tokenizer(task["model"]))).vocab_size  # the logits' width
        stored = accuracy_store.load_reference(self._store_key(task, device), len(task["accuracy"]["eval_prompts"]),
                                               vocab=width)
        if stored is not None:
            self._reference_cost.note("disk")
        else:
            stored = self._compute_reference(task, device)
            accuracy_store.save_reference(self._store_key(task, device), stored)
            self._reference_cost.note("computed", time.perf_counter() - start)
        self._references[key] = stored
        return stored

    def _compute_reference(self, task: dict[str, Any], device: str) -> Reference:
        spec = task["accuracy"]
        reference = self._reference_config(task)
        model, _, _ = self._model(task, reference, device)
        model.set_attn_implementation(reference["attn_implementation"])
        tokenizer = self._tokenizer(task["model"])
        phases.enter("generating the reference answers (accuracy, once per task)")
        sequences = greedy_sequences(model, tokenizer, spec["eval_prompts"], spec["new_tokens"],
                                     task["workload"]["chat_template"], device)
        return Reference(sequences, teacher_forced_logprobs(model, sequences, tokenizer.pad_token_id, device))

    @staticmethod
    def _accuracy_key(task: dict[str, Any], config: dict[str, Any], device: str) -> str:
        # No batch size: accuracy is scored on fixed eval batches; no compile: scored on the plain forward.
        return repr((task["id"], sorted(task["model"].items()), task["seed"], device, config["dtype"],
                     config["quantization"], config["attn_implementation"], config["shard_count"]))

    def _labeled_key(self, task: dict[str, Any], config: dict[str, Any], device: str) -> str:
        # No compile either: labeled_accuracy generates with disable_compile=True, the same path for both.
        return repr((self._accuracy_key(task, config, device), repr(labeled_spec(task))))

    def _known(self, memory: dict[str, dict[str, float]], key: str, names: tuple[str, ...], task: dict[str, Any],
               device: str) -> tuple[dict[str, float] | None, str]:
        """(the figures kept under ``key`` in ``memory``, else on disk, else None; where they came from)."""
        if key in memory:
            return memory[key], "memory"
        stored = accuracy_store.load_figures(accuracy_store.figures_key(self._store_key(task, device), key), names)
        if stored is None:
            return None, "computed"
        memory[key] = stored
        return stored, "disk"

    def _keep(self, memory: dict[str, dict[str, float]], key: str, figures: dict[str, float], task: dict[str, Any],
              device: str) -> dict[str, float]:
        """Keep freshly scored ``figures`` in ``memory`` and on disk; returns them."""
        memory[key] = figures
        accuracy_store.save_figures(accuracy_store.figures_key(self._store_key(task, device), key), figures)
        return figures

    def _accuracy_of(self, task: dict[str, Any], config: dict[str, Any], device: str) -> tuple[dict[str, float], str]:
        """(top1_agree and kl of ``config``, where they came from: "memory", "disk" or "computed")."""
        key = self._accuracy_key(task, config, device)
        known, source = self._known(self._accuracy, key, ACCURACY_FIGURES, task, device)
        if known is not None:
            return known, source
        reference = self._reference(task, device)
        model, _, _ = self._model(task, config, device)
        model.set_attn_implementation(config["attn_implementation"])
        tokenizer = self._tokenizer(task["model"])
        phases.enter("scoring accuracy against the reference (teacher-forced)")
        scored = agreement(reference, teacher_forced_logprobs(model, reference.sequences, tokenizer.pad_token_id,
                                                              device))
        return self._keep(self._accuracy, key, scored, task, device), "computed"

    def _labeled_figure(self, task: dict[str, Any], config: dict[str, Any], device: str) -> tuple[float | None, str]:
        """(exact-match accuracy of ``config``'s greedy answers on the labeled set, where it came from)."""
        labeled = labeled_spec(task)
        if not labeled:
            return None, "memory"
        key = self._labeled_key(task, config, device)
        known, source = self._known(self._labeled, key, LABELED_FIGURES, task, device)
        if known is not None:
            return known["task_accuracy"], source
        from tuner.measure.backends.hf_task_accuracy import labeled_accuracy

        model, _, _ = self._model(task, config, device)
        model.set_attn_implementation(config["attn_implementation"])
        phases.enter(f"scoring task accuracy ({len(labeled['items'])} labeled questions)")
        share = labeled_accuracy(model, self._tokenizer(task["model"]), labeled["items"], labeled["new_tokens"],
                                 task["workload"]["chat_template"], device)
        return self._keep(self._labeled, key, {"task_accuracy": share}, task, device)["task_accuracy"], "computed"

    def _task_accuracy(self, task: dict[str, Any], config: dict[str, Any], device: str) -> float | None:
        """Exact-match accuracy of ``config``'s greedy answers on the task's labeled set; None without one."""
        return self._labeled_figure(task, config, device)[0]

    def _reference_metrics(self, task: dict[str, Any], device: str) -> dict[str, Any]:
        """The reference config's own figures a bound can be relative to (their cost is the reference's)."""
        start = time.perf_counter()
        task_accuracy, source = self._labeled_figure(task, self._reference_config(task), device)
        if labeled_spec(task):  # without a labeled set the reference has no figure of its own to produce
            self._reference_cost.note(source, time.perf_counter() - start if source == "computed" else 0.0)
        return {"task_accuracy": task_accuracy}

    def _group(self, world: int, device: str) -> ShardGroup:
        """The live rank group for ``world`` shards (one group at a time: a new shard count replaces it)."""
        if self._shards is not None and (self._shards.world != world or not self._shards.alive):
            self._shards.close(force=not self._shards.alive)
            self._shards = None
        if self._shards is None:
            phases.enter(f"starting {world} tensor-parallel ranks")
            self._shards = ShardGroup(world, device)
        return self._shards

    def _measure_sharded(self, task: dict[str, Any], config: dict[str, Any], device: str,
                         rank_fault: tuple[int, str] | None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Tensor-parallel: the ranks time the sharded model and score it against the unsharded reference."""
        world = config["shard_count"]
        plan_shard(model_config(task["model"], len(self._tokenizer(task["model"]))), 0, world)
        self._reference_cost = ReferenceCost()
        accuracy_start = time.perf_counter()
        reference_metrics = self._reference_metrics(task, device)
        key, labeled_key = self._accuracy_key(task, config, device), self._labeled_key(task, config, device)
        labeled = labeled_spec(task)
        known, figures_source = self._known(self._accuracy, key, ACCURACY_FIGURES, task, device)
        reference = None if known is not None else self._reference(task, device)
        known_labeled = self._known(self._labeled, labeled_key, LABELED_FIGURES, task, device)[0] if labeled else None
        request: dict[str, Any] = {"task": task, "config": config,
                                   "sequences": None if reference is None else reference.sequences,
                                   "labeled": labeled if labeled and known_labeled is None else None}
        if rank_fault is not None:
            request["fault_rank"], request["fault"] = rank_fault
        accuracy_s = time.perf_counter() - accuracy_start  # the ranks report their own forward passes
        group = self._group(world, device)
        phases.enter(f"measuring on {world} tensor-parallel ranks")
        try:
            answer = group.measure(request)
        except Exception:
            self._shards = None  # the group closed itself: the next sharded config starts fresh ranks
            raise
        if answer["logprobs"] is not None and reference is not None:
            scoring_start = time.perf_counter()
            self._keep(self._accuracy, key, agreement(reference, answer["logprobs"]), task, device)
            accuracy_s += time.perf_counter() - scoring_start
        if answer.get("task_accuracy") is not None:
            self._keep(self._labeled, labeled_key, {"task_accuracy": answer["task_accuracy"]}, task, device)
        metrics, info = answer["metrics"], answer["info"]
        metrics.update(self._accuracy[key])
        metrics["task_accuracy"] = self._labeled.get(labeled_key, {}).get("task_accuracy") if labeled else None
        info.update({"device": device, "accuracy_s": accuracy_s, "accuracy_cached": known is not None,
                     **self._reference_cost.info(figures_source), "accuracy_path": ACCURACY_PATH,
                     "reference_metrics": reference_metrics})
        return metrics, info

    def close(self) -> None:
        """Stop the rank processes of a tensor-parallel group, if any."""
        if self._shards is not None:
            self._shards.close()
            self._shards = None

    def measure(self, task: dict[str, Any], config: dict[str, Any], rank_fault: tuple[int, str] | None = None,
                stop: StopRule | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """Measure one config for real; returns (metrics, info). Raises Infeasible or the failure itself.

        ``stop``: when to end the measurement early (``info["pruned"]`` then says why; a tensor-parallel
        config is always measured whole). ``rank_fault`` (tests only) injects a fault into one rank of a
        tensor-parallel group.
        """
        config = {**knob_defaults(), **config}
        device = resolve_device(task["device"])
        reason = why_infeasible(config, Machine.here(device))
        if reason is not None:
            raise Infeasible(reason)
        check_dtype(config["dtype"], device)
        if config["shard_count"] > 1:
            return self._measure_sharded(task, config, device, rank_fault)
        try:
            return self._measure_alone(task, config, device, stop)
        except Exception as error:
            if not is_oom(error) or len(self._models) <= 1:  # nothing else to unload
                raise
        # Out of memory while other models were kept: unload them all (after the traceback is gone, so its
        # frames hold no model) and measure this config alone.
        self.drop_models(device)
        metrics, info = self._measure_alone(task, config, device, stop)
        info["retried_after_unloading"] = True
        return metrics, info

    def _measure_alone(self, task: dict[str, Any], config: dict[str, Any], device: str,
                       stop: StopRule | None) -> tuple[dict[str, Any], dict[str, Any]]:
        load_start = time.perf_counter()
        model, quantized_modules, loaded = self._model(task, config, device)
        load_s = time.perf_counter() - load_start
        self._reference_cost = ReferenceCost()

        # Accuracy first: it is cheap next to timing, and a config that breaks an accuracy bound stops here.
        accuracy_start = time.perf_counter()
        accuracy, figures_source = self._accuracy_of(task, config, device)
        reference_metrics = self._reference_metrics(task, device)
        miss = stop.accuracy_miss(accuracy, reference_metrics) if stop else None
        task_accuracy = None if miss else self._task_accuracy(task, config, device)
        miss = miss or (stop.accuracy_miss({"task_accuracy": task_accuracy}, reference_metrics) if stop else None)
        accuracy_s = time.perf_counter() - accuracy_start
        common = {"device": device, "loaded_weights": loaded, "load_s": load_s, "accuracy_s": accuracy_s,
                  "accuracy_cached": figures_source != "computed", **self._reference_cost.info(figures_source),
                  "accuracy_path": ACCURACY_PATH,
                  "reference_metrics": reference_metrics,
                  "quantized_modules": quantized_modules,
                  "weight_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")}
        if miss:
            return {**accuracy, "task_accuracy": task_accuracy}, {**common, PRUNED: {"stage": "accuracy",
                                                                                    "reason": miss}}

        model.set_attn_implementation(config["attn_implementation"])
        tokenizer = self._tokenizer(task["model"])
        stop_check = None
        if stop is not None:
            tokens_per_call = config["batch_size"] * task["workload"]["new_tokens"]
            stop_check = partial(stop.timing_miss, tokens_per_call=tokens_per_call, reference=reference_metrics)
        metrics, info = measure_generation(model, tokenizer, task["workload"], config, device,
                                           stop_check=stop_check)
        metrics.update(accuracy)
        metrics["task_accuracy"] = task_accuracy
        info.update({**common, "kept_models_mb": self.kept_bytes / MB,
                     "memory_budget_mb": self.memory_budget / MB,
                     "memory_free_at_budget_mb": (self.memory_free_at_budget or 0) / MB or None})
        return metrics, info
