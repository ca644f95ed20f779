"""Where MLflow data goes: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite under runs/."""

from __future__ import annotations

import os
from pathlib import Path


def default_tracking_uri(runs_dir: Path) -> str:
    """The embedded store: ``sqlite:///<runs>/mlflow.db`` (MLflow 3 refuses bare file stores)."""
    return f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(explicit: str | None, runs_dir: Path) -> str:
    """The URI in force for this invocation."""
    return explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(runs_dir)
