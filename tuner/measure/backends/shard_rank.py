"""One tensor-parallel rank: holds its shard of the model and measures configs in lockstep with the others.

Started by :class:`~tuner.measure.backends.shard_group.ShardGroup`. Every rank receives the same request,
runs the same forward passes (the all-reduces keep them in lockstep) and agrees on every timing decision
through a gloo control group; rank 0 answers with the metrics and the teacher-forced log-probabilities.
"""

from __future__ import annotations

import os
import time
import traceback
from collections import OrderedDict
from datetime import timedelta
from multiprocessing.connection import Connection
from typing import Any

from tuner.measure import phases

MEMORY_SHARE = 0.5  # the ranks' kept shards together may fill this share of the memory free at the first load


class RankBackend:
    """The rank's loaded shards (LRU) and the measurement it runs on them."""

    def __init__(self, rank: int, world: int, device: str, control_group: Any):
        self.rank, self.world, self.device = rank, world, device
        self.control_group = control_group
        self._models: OrderedDict[tuple, tuple[Any, int, dict[str, Any], int]] = OrderedDict()
        self._budget: int | None = None
        self._tokenizers: dict[str, Any] = {}

    def consensus(self, value: float) -> float:
        """The largest of every rank's ``value`` (the slowest rank sets the pace of a sharded model)."""
        import torch
        import torch.distributed as dist

        reading = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(reading, op=dist.ReduceOp.MAX, group=self.control_group)
        return float(reading.item())

    def tokenizer(self, model_spec: dict[str, Any]) -> Any:
        """The task's tokenizer, loaded once."""
        from tuner.measure.backends.hf_models import load_tokenizer

        key = repr(sorted(model_spec.items()))
        if key not in self._tokenizers:
            self._tokenizers[key] = load_tokenizer(model_spec)
        return self._tokenizers[key]

    def model(self, task: dict[str, Any], config: dict[str, Any]) -> tuple[Any, int, dict[str, Any], bool]:
        """(this rank's shard, quantized module count, split description, freshly loaded?)."""
        from tuner.measure.backends.hf_models import float32_bytes, load_model, quantize
        from tuner.measure.backends.tensor_parallel import shard_model
        from tuner.measure.memory import available_bytes, evict_least_recent, model_bytes

        key = (repr(sorted(task["model"].items())), task["seed"], config["dtype"], config["quantization"])
        if key in self._models:
            self._models.move_to_end(key)
            model, quantized, split, _ = self._models[key]
            return model, quantized, split, False
        vocab = len(self.tokenizer(task["model"]))
        # Evict by bytes, not by count: every rank loads the whole model once on the CPU before slicing it.
        needed = float32_bytes(task["model"], vocab)
        if self._budget is None:  # CPU ranks share one machine's memory; GPU ranks have a device each
            share = self.world if self.device == "cpu" else 1
            self._budget = int(MEMORY_SHARE * available_bytes(self.device) / share)
        evict_least_recent(self._models, lambda entry: entry[3], needed, self._budget, self.device)
        # Load whole on the CPU, keep this rank's slice, then move and quantize only the slice.
        model, _ = load_model(task["model"], config["dtype"], "none", "cpu", task["seed"], vocab)
        split = shard_model(model, self.rank, self.world)
        model.to(self.device)
        quantized = quantize(model, config["quantization"])
        self._models[key] = (model, quantized, split, model_bytes(model))
        return model, quantized, split, True

    def measure(self, request: dict[str, Any]) -> dict[str, Any]:
        """Measure the request's config on this rank's shard; rank 0's answer carries the results."""
        from tuner.measure.backends.hf_accuracy import teacher_forced_logprobs
        from tuner.measure.backends.hf_timing import measure_generation
        from tuner.measure.faults import inject
        from tuner.measure.memory import release_freed

        if request.get("fault_rank") == self.rank:
            inject(request.get("fault"))
        task, config = request["task"], request["config"]
        load_start = time.perf_counter()
        model, quantized, split, loaded = self.model(task, config)
        load_s = self.consensus(time.perf_counter() - load_start)
        model.set_attn_implementation(config["attn_implementation"])
        tokenizer = self.tokenizer(task["model"])
        logprobs = None
        if request.get("sequences") is not None:
            logprobs = teacher_forced_logprobs(model, request["sequences"], tokenizer.pad_token_id, self.device)
        task_accuracy = None
        if request.get("labeled"):
            from tuner.measure.backends.hf_task_accuracy import labeled_accuracy

            # Every rank generates the same greedy answers in lockstep (the all-reduces pair up); rank 0's counts.
            labeled = request["labeled"]
            task_accuracy = labeled_accuracy(model, tokenizer, labeled["items"], labeled["new_tokens"],
                                             task["workload"]["chat_template"], self.device)
        metrics, info = measure_generation(model, tokenizer, task["workload"], config, self.device, self.consensus)
        # Each rank's own figure (its shard's weights + its generation peak); a deployment needs all at once.
        per_rank = [self._gather(info[name]) for name in ("weights_mb", "activation_peak_mb")]
        peak_per_rank = [weights + activation for weights, activation in zip(*per_rank, strict=True)]
        metrics["peak_mem_mb"] = sum(peak_per_rank)
        info.update({"tensor_parallel": {**split, "method": "head-group split, all-reduce over "
                                         f"{'nccl' if self.device.startswith('cuda') else 'gloo'}"},
                     "peak_mem_mb_per_rank": peak_per_rank, "weights_mb": sum(per_rank[0]),
                     "activation_peak_mb": sum(per_rank[1]), "loaded_weights": loaded, "load_s": load_s,
                     "quantized_modules": quantized,
                     "weight_dtype": str(next(model.parameters()).dtype).removeprefix("torch.")})
        # Hand the measurement's freed heap back: untrimmed, a rank's RSS grew ~770 MB a SmolLM2 decode config
        # (benchmarks/shard_rank_memory.py), until the kernel reclaimed memory under it mid-timing.
        release_freed(self.device)
        return {"metrics": metrics, "info": info, "logprobs": logprobs, "task_accuracy": task_accuracy}

    def _gather(self, value: float) -> list[float]:
        import torch.distributed as dist

        values: list[Any] = [None] * self.world
        dist.all_gather_object(values, value, group=self.control_group)
        return [float(item) for item in values]


def _device_of(rank: int, world: int, device: str) -> str:
    import torch

    if device == "cuda":
        torch.cuda.set_device(rank)
        return f"cuda:{rank}"
    # Share the cores: ranks that each take every core would fight over them.
    torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // world))
    return "cpu"


def rank_main(rank: int, world: int, device: str, store_path: str, connection: Connection) -> None:
    """Entry point of a rank process: join the group, then answer requests until told to stop."""
    import torch.distributed as dist

    try:
        local_device = _device_of(rank, world, device)
        store = dist.FileStore(store_path, world)
        dist.init_process_group("nccl" if device == "cuda" else "gloo", store=store, rank=rank, world_size=world,
                                timeout=timedelta(minutes=30), device_id=None)
        control = dist.new_group(backend="gloo")  # timing decisions travel on the CPU, whatever the device
        backend = RankBackend(rank, world, local_device, control)
        connection.send({"event": "ready", "rank": rank, "pid": os.getpid()})
        if rank == 0:  # one rank speaks for the group: the ranks move in lockstep
            phases.install(connection.send)
    except Exception as error:
        connection.send({"event": "error", "type": type(error).__name__, "message": str(error),
                         "log_tail": traceback.format_exc().splitlines()[-6:]})
        return
    while True:
        try:
            request = connection.recv()
        except EOFError:  # the worker is gone
            break
        if request.get("op") == "shutdown":
            break
        try:
            answer = {"event": "result", **backend.measure(request)}
        except Exception as error:  # the group reports it; the worker then discards every rank
            answer = {"event": "error", "type": type(error).__name__, "message": str(error).strip() or repr(error),
                      "log_tail": traceback.format_exc().splitlines()[-6:]}
        with phases.LOCK:
            phases.leave()
            connection.send(answer if rank == 0 or answer["event"] == "error" else {"event": "done", "rank": rank})
    dist.destroy_process_group()
