"""What a worker keeps on disk beyond one measurement: the reference's answers here, compiled graphs in torch's.

The evaluator passes the settings in the worker's environment (read without torch). The reference store lives
under the measurement cache's folder (``runs/cache`` or ``--cache-dir``; run-local for ``tune --no-cache``, none
for ``measure --no-cache``). Inductor's caches stay where torch keeps them (``$TORCHINDUCTOR_CACHE_DIR``, by
default a per-user folder under /tmp), never in the runs folder: inductor loads what it finds there (pickled
graphs, shared objects), and a runs folder may come from someone else.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR = "INFERTUNE_CACHE_DIR"  # the measurement cache's folder; the worker's own stores go inside it
COMPILE_CACHE = "INFERTUNE_COMPILE_CACHE"  # "1": reuse inductor's compiled graphs across configs and runs


def worker_cache_env(cache_dir: Path, compile_cache: bool, stores: bool = True) -> dict[str, str]:
    """The environment that points a worker's reference store into ``cache_dir`` and says whether graphs are reused.

    ``stores``: False when nothing cached may answer (``measure --no-cache``): the reference is computed afresh
    (the variable is set empty, so one exported by the user does not count either).
    """
    return {COMPILE_CACHE: "1" if compile_cache else "0", CACHE_DIR: str(Path(cache_dir).resolve()) if stores else ""}


def compile_cache_enabled() -> bool:
    """Whether this worker may serve a compile from inductor's FX graph cache (a search: yes; figures asked for
    with ``measure`` or ``record``: no, their ``warmup_s`` is a whole compile)."""
    return os.environ.get(COMPILE_CACHE) == "1"


def store_folder(name: str) -> Path | None:
    """``<cache>/<name>``, the folder of one of the worker's stores; None when no cache folder was given."""
    root = os.environ.get(CACHE_DIR)
    return Path(root) / name if root else None
