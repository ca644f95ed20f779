"""Fixtures of the serving tests."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator

import pytest


@pytest.fixture(scope="module")
def kv_cache_sized_from_free_memory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Held by a test module whose servers let the engine size its KV cache (transformers takes 60% of free memory
    on a CPU): two of them at once, one per xdist worker, exhaust the machine and the kernel kills one."""
    shared = tmp_path_factory.getbasetemp().parent  # under xdist, the folder every worker's temp folder is in
    with open(shared / "kv-cache-sized-from-free-memory.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes
        yield
