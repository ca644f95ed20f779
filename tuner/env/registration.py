"""Register every ``envs/*.yaml`` as a Gymnasium id ``infertune/<task id>-v0``."""

from __future__ import annotations

import os
from pathlib import Path

import gymnasium as gym

from tuner.space.loader import read_yaml
from tuner.util.errors import ConfigError

ENTRY_POINT = "tuner.env.tuning_env:TuningEnv"


def env_id(task_id: str) -> str:
    """The Gymnasium id of a task."""
    return f"infertune/{task_id}-v0"


def register_envs(envs_dir: str | Path | None = None) -> list[str]:
    """Register the task files of a folder (default ``$INFERTUNE_ENVS_DIR`` or ``./envs``); returns the ids."""
    folder = Path(envs_dir or os.environ.get("INFERTUNE_ENVS_DIR", "envs"))
    registered = []
    for path in sorted(folder.glob("*.yaml")) if folder.is_dir() else []:
        try:
            data = read_yaml(path) or {}
        except ConfigError:
            continue  # a broken file is reported when it is used, not when ids are listed
        name = env_id(str(data.get("id") or path.stem) if isinstance(data, dict) else path.stem)
        if name not in gym.registry:
            gym.register(id=name, entry_point=ENTRY_POINT, kwargs={"task_path": str(path.resolve())})
        registered.append(name)
    return registered
