"""The reference's outputs and each weights variant's accuracy figures on disk, once per task, machine and software."""

from __future__ import annotations

import contextlib
import json
import math
import os
import secrets
import stat
from collections.abc import Collection, Iterator, Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load, save

from tuner.measure.backends.hf_accuracy import Reference
from tuner.measure.cache import cache_key
from tuner.measure.fingerprint import fingerprint
from tuner.measure.worker_caches import store_folder

# Bumped when infertune's own scoring code (greedy references, teacher forcing, agreement, labeled answers)
# changes what a stored figure means, so older entries miss.
STORE_VERSION = 1
FOLDER = "references"  # <cache>/references, beside the measurement cache's entries

# A runs folder may be handed over by a stranger: a read never follows a link, waits on a FIFO or reads past a cap,
# a write never leaves the store's folder, and an implausible entry is a miss (scored again and overwritten).
FIGURES_BYTES = 64 * 1024  # the most a figures entry may take: a few numbers
SEQUENCE_BYTES = 256 * 1024 * 1024  # the most one sequence's log-probabilities may take (512 tokens x 131072 x 4)
HEADER_BYTES = 16 * 1024 * 1024  # beside them, a reference's header: each sequence's token ids
READ_CHUNK = 64 * 1024 * 1024
RANGES = {"top1_agree": (0.0, 1.0), "task_accuracy": (0.0, 1.0), "kl": (0.0, math.inf)}  # others: any finite
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# what parsing a stranger's safetensors file may raise (an unknown dtype: KeyError; bad JSON or UTF-8: ValueError)
_UNREADABLE = (ValueError, KeyError, RuntimeError, RecursionError, SafetensorError)


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


def load_reference(key: str, count: int, vocab: int | None = None) -> Reference | None:
    """The stored reference for ``key`` with ``count`` sequences (``vocab`` wide, when given), or None if odd."""
    blob = _read_entry(f"{key}.safetensors", count * SEQUENCE_BYTES + HEADER_BYTES)
    if blob is None:
        return None
    try:
        tensors = load(blob)
        sequences = _sequences(json.loads(_metadata(blob).get("sequences", "null")))
    except _UNREADABLE:
        return None
    if sequences is None or len(sequences) != count or set(tensors) != {str(i) for i in range(count)}:
        return None
    logprobs = [tensors[str(index)] for index in range(count)]
    return Reference(sequences, logprobs) if _plausible(sequences, logprobs, vocab) else None


def _metadata(blob: bytes) -> dict[str, Any]:
    """The ``__metadata__`` of safetensors bytes that ``load`` accepted: a JSON header after its 8-byte length."""
    metadata = json.loads(blob[8:8 + int.from_bytes(blob[:8], "little")]).get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}


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
    """Whether ``data`` is a list of ints (a bool is not one)."""
    return isinstance(data, list) and all(isinstance(token, int) and not isinstance(token, bool) for token in data)


def _plausible(sequences: list[tuple[list[int], list[int]]], logprobs: list[torch.Tensor], vocab: int | None) -> bool:
    """Whether the tensors share one width (``vocab`` when given), fit their sequences, and the ids fit the width."""
    widths = {tensor.shape[-1] for tensor in logprobs if tensor.dim() == 2}
    if len(widths) != 1 or (vocab is not None and widths != {vocab}):
        return False
    width = widths.pop()
    return all(_fits(tensor, continuation) and all(0 <= token < width for token in [*prompt, *continuation])
               for (prompt, continuation), tensor in zip(sequences, logprobs, strict=True))


def _fits(tensor: torch.Tensor, continuation: list[int]) -> bool:
    """Whether ``tensor`` is finite float32 log-probabilities, one row per continuation token."""
    return (tensor.dtype == torch.float32 and tensor.dim() == 2 and tensor.shape[0] == len(continuation)
            and bool(torch.isfinite(tensor).all()))


def save_reference(key: str, reference: Reference) -> None:
    """Store ``reference`` under ``key``: float32 log-probabilities, token ids in the header (one file, one writer)."""
    if store_folder(FOLDER) is None:
        return
    tensors = {str(index): tensor.float().contiguous() for index, tensor in enumerate(reference.logprobs)}
    sequences = json.dumps([[list(prompt), list(continuation)] for prompt, continuation in reference.sequences])
    try:
        blob = save(tensors, metadata={"sequences": sequences})
    except SafetensorError:
        return
    _write_atomically(f"{key}.safetensors", blob)


def figures_key(store_key: str, variant: str) -> str:
    """The key of one weights variant's figures (``variant``: the backend's in-memory key) under ``store_key``."""
    return cache_key({"task": store_key, "variant": variant})


def load_figures(key: str, names: Collection[str]) -> dict[str, float] | None:
    """The stored figures ``names`` under ``key``, or None: also for an unreadable entry or an implausible one."""
    blob = _read_entry(f"{key}.json", FIGURES_BYTES)
    if blob is None:
        return None
    try:
        stored = json.loads(blob)
    except (ValueError, RecursionError):  # bad JSON or UTF-8, JSON nested too deep
        return None
    if not isinstance(stored, dict) or set(stored) != set(names) or not all(map(_in_range, stored, stored.values())):
        return None
    return {name: float(value) for name, value in stored.items()}


def _in_range(name: str, value: Any) -> bool:
    """Whether ``value`` is a finite number that figure ``name`` can take (a share in [0, 1], a KL of 0 or more)."""
    low, high = RANGES.get(name, (-math.inf, math.inf))
    return _finite(value) and low <= value <= high


def _finite(value: Any) -> bool:
    """Whether ``value`` is a JSON number that is a finite float (a 400-digit integer is not)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def save_figures(key: str, figures: Mapping[str, float]) -> None:
    """Store ``figures`` under ``key``; a figure load_figures would refuse (NaN, out of range) is scored again."""
    if store_folder(FOLDER) is not None and all(map(_in_range, figures, figures.values())):
        _write_atomically(f"{key}.json", json.dumps(dict(figures), allow_nan=False).encode())


def _read_entry(name: str, cap: int) -> bytes | None:
    """The bytes of entry ``name``, or None: no store, a link, a FIFO or device, or more than ``cap`` bytes."""
    with _store(create=False) as folder:
        return None if folder is None else _read(folder, name, cap)


def _read(folder: int, name: str, cap: int) -> bytes | None:
    """The bytes of the regular file ``name`` in ``folder`` if it holds at most ``cap``, read from one descriptor."""
    try:
        descriptor = os.open(name, _READ, dir_fd=folder)  # O_NONBLOCK: a FIFO opens at once, then fails fstat
    except OSError:
        return None
    try:
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_size > cap:
            return None
        return _read_to_end(descriptor, cap)
    except OSError:
        return None
    finally:
        os.close(descriptor)


def _read_to_end(descriptor: int, cap: int) -> bytes | None:
    """All bytes left behind ``descriptor``, or None past ``cap`` (a file that grew since its size was read)."""
    chunks, size = [], 0
    while size <= cap and (chunk := os.read(descriptor, min(cap + 1 - size, READ_CHUNK))):
        chunks.append(chunk)
        size += len(chunk)
    return b"".join(chunks) if size <= cap else None


def _write_atomically(name: str, blob: bytes) -> None:
    """Write entry ``name`` as a temporary file renamed over it (no half files); a failed write costs a recompute."""
    with _store(create=True) as folder:
        if folder is not None:
            with contextlib.suppress(OSError):  # full disk, read-only folder: a later run pays the recompute
                _replace(folder, name, blob)


def _replace(folder: int, name: str, blob: bytes) -> None:
    """Write ``blob`` to a fresh file in ``folder``, renamed to ``name`` (a link there is replaced, not followed)."""
    temporary = f"{name}.{secrets.token_hex(8)}.tmp"
    try:
        with open(os.open(temporary, _CREATE, 0o600, dir_fd=folder), "wb") as stream:
            stream.write(blob)
        os.replace(temporary, name, src_dir_fd=folder, dst_dir_fd=folder)
    except OSError:
        with contextlib.suppress(OSError):  # a failed write leaves no stray temporary file
            os.unlink(temporary, dir_fd=folder)
        raise


@contextlib.contextmanager
def _store(create: bool) -> Iterator[int | None]:
    """A descriptor of the store's folder, or None: no cache folder given, no store yet, or a link in either's place."""
    folder = store_folder(FOLDER)
    descriptor = None if folder is None else _open_store(folder, create)
    try:
        yield descriptor
    finally:
        if descriptor is not None:
            os.close(descriptor)


def _open_store(folder: Path, create: bool) -> int | None:
    """Open ``folder`` through its parent, following no link at either (made first when ``create``), or None."""
    parent = None
    try:
        if create:
            folder.parent.mkdir(parents=True, exist_ok=True)  # a link there is refused below, nothing made through it
        parent = os.open(folder.parent, _DIRECTORY)
        if create:
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder.name, dir_fd=parent)
        return os.open(folder.name, _DIRECTORY, dir_fd=parent)
    except OSError:
        return None
    finally:
        if parent is not None:
            os.close(parent)
