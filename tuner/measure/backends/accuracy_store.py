"""The reference's outputs and each weights variant's accuracy figures on disk, once per task, machine and software."""

from __future__ import annotations

import contextlib
import json
import math
import os
import tempfile
from collections.abc import Callable, Collection, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from tuner.measure.backends.hf_accuracy import Reference
from tuner.measure.cache import cache_key
from tuner.measure.fingerprint import fingerprint
from tuner.measure.worker_caches import store_folder

# Bumped when infertune's own scoring code (greedy references, teacher forcing, agreement, labeled answers)
# changes what a stored figure means, so older entries miss.
STORE_VERSION = 1
FOLDER = "references"  # <cache>/references, beside the measurement cache's entries


def task_key(task: Mapping[str, Any], device: str, reference_config: Mapping[str, Any]) -> str:
    """A hash of everything the reference and the figures scored against it depend on, besides the config."""
    return cache_key({"task": task["id"], "model": _model_identity(task["model"]), "seed": task["seed"],
                      "accuracy": task["accuracy"], "reference_config": reference_config,
                      "chat_template": task["workload"]["chat_template"], "device": device,
                      "fingerprint": fingerprint(device), "store_version": STORE_VERSION})


def _model_identity(model_spec: Mapping[str, Any]) -> dict[str, Any]:
    """The model spec, plus the GGUF file's size: a file replaced at the same path gives other weights."""
    identity = dict(model_spec)
    if "gguf" in identity:
        with contextlib.suppress(OSError):  # the load fails anyway: nothing is stored without a reference
            identity["gguf_bytes"] = Path(identity["gguf"]).stat().st_size
    return identity


def load_reference(key: str, count: int) -> Reference | None:
    """The stored reference for ``key`` with ``count`` sequences, or None: also for an unreadable or odd file."""
    folder = store_folder(FOLDER)
    if folder is None:
        return None
    try:
        with safe_open(folder / f"{key}.safetensors", framework="pt") as stored:
            sequences = _sequences(json.loads((stored.metadata() or {}).get("sequences", "null")))
            names = set(stored.keys())
            if sequences is None or len(sequences) != count or names != {str(i) for i in range(count)}:
                return None
            logprobs = [stored.get_tensor(str(index)) for index in range(count)]
    except (OSError, ValueError, RecursionError, SafetensorError):  # bad JSON or UTF-8, JSON nested too deep
        return None
    return Reference(sequences, logprobs) if _shapes_fit(sequences, logprobs) else None


def _sequences(data: Any) -> list[tuple[list[int], list[int]]] | None:
    """``data`` as (prompt ids, continuation ids) pairs, or None when it is not that."""
    if not isinstance(data, list):
        return None
    pairs = []
    for pair in data:
        if not (isinstance(pair, list) and len(pair) == 2 and all(_token_ids(part) for part in pair)):
            return None
        pairs.append((pair[0], pair[1]))
    return pairs


def _token_ids(data: Any) -> bool:
    return isinstance(data, list) and all(isinstance(token, int) and not isinstance(token, bool) for token in data)


def _shapes_fit(sequences: list[tuple[list[int], list[int]]], logprobs: list[torch.Tensor]) -> bool:
    """Whether each tensor is float32 [continuation length, vocab], with one vocab for all."""
    vocabs = {tensor.shape[-1] for tensor in logprobs if tensor.dim() == 2}
    return len(vocabs) == 1 and all(
        tensor.dtype == torch.float32 and tensor.dim() == 2 and tensor.shape[0] == len(continuation)
        for (_prompt, continuation), tensor in zip(sequences, logprobs, strict=True))


def save_reference(key: str, reference: Reference) -> None:
    """Store ``reference`` under ``key``: log-probabilities as float32 tensors, token ids as JSON beside them.

    One file, so a reader never pairs one writer's sequences with another's tensors. No-op without a folder.
    """
    folder = store_folder(FOLDER)
    if folder is None:
        return
    tensors = {str(index): tensor.float().contiguous() for index, tensor in enumerate(reference.logprobs)}
    sequences = json.dumps([[list(prompt), list(continuation)] for prompt, continuation in reference.sequences])
    _write_atomically(folder / f"{key}.safetensors",
                      lambda path: save_file(tensors, path, metadata={"sequences": sequences}))


def figures_key(task: str, variant: str) -> str:
    """The key of one weights variant's figures (``variant``: the backend's in-memory key) in task ``task``."""
    return cache_key({"task": task, "variant": variant})


def load_figures(key: str, names: Collection[str]) -> dict[str, float] | None:
    """The stored figures ``names`` under ``key``, or None: also for an unreadable entry or one without them."""
    folder = store_folder(FOLDER)
    if folder is None:
        return None
    try:
        stored = json.loads((folder / f"{key}.json").read_bytes())
    except (OSError, ValueError, RecursionError):  # bad JSON or UTF-8, JSON nested too deep
        return None
    if not isinstance(stored, dict) or set(stored) != set(names) or not all(map(_finite, stored.values())):
        return None
    return {name: float(value) for name, value in stored.items()}


def _finite(value: Any) -> bool:
    """Whether ``value`` is a JSON number that is a finite float (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def save_figures(key: str, figures: Mapping[str, float]) -> None:
    """Store ``figures`` under ``key`` (no-op without a folder); a NaN or an infinity is not stored (strict JSON):
    it is scored again."""
    folder = store_folder(FOLDER)
    if folder is not None and all(map(_finite, figures.values())):
        blob = json.dumps(dict(figures), allow_nan=False)
        _write_atomically(folder / f"{key}.json", lambda path: Path(path).write_text(blob))


def _write_atomically(target: Path, write: Callable[[str], Any]) -> None:
    """``write`` a temporary file beside ``target``, then rename it: a reader never sees half a file.

    A store that cannot be written (full disk, read-only folder) costs a later run the recompute, not this one
    its measurement.
    """
    temporary = None
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=target.parent, suffix=".tmp")
        os.close(handle)
        write(temporary)
        os.replace(temporary, target)
        temporary = None
    except (OSError, SafetensorError):
        pass
    finally:
        if temporary is not None:  # a failed write leaves no stray temporary file
            Path(temporary).unlink(missing_ok=True)
