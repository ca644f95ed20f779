"""Where a worker keeps what outlives one measurement on disk: compiled graphs and the reference's answers.

The evaluator passes them in the worker's environment (read without torch): both live under the measurement
cache's folder (``runs/cache`` or ``--cache-dir``), so ``--no-cache`` and each ``compare`` seed start from nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_DIR = "INFERTUNE_CACHE_DIR"  # the measurement cache's folder; the worker's own stores go inside it
COMPILE_CACHE = "INFERTUNE_COMPILE_CACHE"  # "1": reuse inductor's compiled graphs across configs and runs
INDUCTOR_CACHE_DIR = "TORCHINDUCTOR_CACHE_DIR"  # torch's own variable: where inductor writes kernels and graphs


def worker_cache_env(cache_dir: Path, compile_cache: bool, stores: bool = True) -> dict[str, str]:
    """The environment that points a worker's stores into ``cache_dir`` (a user's own inductor folder is kept).

    ``stores``: False when nothing cached may answer (``measure --no-cache``): the reference is computed afresh.
    """
    env = {COMPILE_CACHE: "1" if compile_cache else "0"}
    if stores:
        env[CACHE_DIR] = str(Path(cache_dir).resolve())
    if not os.environ.get(INDUCTOR_CACHE_DIR):
        env[INDUCTOR_CACHE_DIR] = str(Path(cache_dir).resolve() / "torch-compile")
    return env


def compile_cache_enabled() -> bool:
    """Whether this worker may serve a compile from inductor's FX graph cache (a search: yes; figures asked for
    with ``measure`` or ``record``: no, their ``warmup_s`` is a cold compile)."""
    return os.environ.get(COMPILE_CACHE) == "1"


def store_folder(name: str) -> Path | None:
    """``<cache>/<name>``, the folder of one of the worker's stores; None when no cache folder was given."""
    root = os.environ.get(CACHE_DIR)
    return Path(root) / name if root else None
