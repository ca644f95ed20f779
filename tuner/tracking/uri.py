"""Where MLflow data goes: ``--tracking-uri``, else ``MLFLOW_TRACKING_URI``, else SQLite under runs/."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from tuner.util.redact import userinfo_url

# MLflow is a mirror: against an unreachable server a request costs seconds, not MLflow's default ~100 s of
# retries (7 retries, backoff factor 2, 120 s timeout). MLflow reads these per request; a value the user set wins.
HTTP_WAIT_LIMITS = {"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "1", "MLFLOW_HTTP_REQUEST_TIMEOUT": "5",
                    "MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR": "0", "MLFLOW_HTTP_REQUEST_BACKOFF_JITTER": "0"}


DB_ATTEMPTS = 3  # MLflow tries a database store 10 times over ~102 s before it gives up; 3 take 0.4 s
_MLFLOW_DB_ATTEMPTS: list[int] = []  # MLflow's own count, kept for the embedded SQLite store


def bound_http_waits() -> None:
    """Set MLflow's HTTP and database retry limits unless the user set them (every MlflowClient of the tool)."""
    for name, value in HTTP_WAIT_LIMITS.items():
        os.environ.setdefault(name, value)
    # each retry logs the driver's whole error (3-5 lines); the one warning that counts is the tool's
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.ERROR)
    logging.getLogger("mlflow").setLevel(logging.WARNING)  # the database set-up chatter is not the user's business


bound_http_waits()  # on import: before any MlflowClient the tool makes (tuner.tracking imports this module)


def bound_db_retries(tracking_uri: str) -> None:
    """Few connection attempts for a database server (a mirror that is down costs 0.4 s, not ~102 s); MLflow's own
    count for the embedded SQLite store, where a retry waits out another process's lock, not a dead server."""
    from mlflow.store.db import utils as db_utils

    if not _MLFLOW_DB_ATTEMPTS:
        _MLFLOW_DB_ATTEMPTS.append(db_utils.MAX_RETRY_COUNT)
    # MLflow has no setting for it: the count is a module constant, read on each connect
    default = _MLFLOW_DB_ATTEMPTS[0]
    db_utils.MAX_RETRY_COUNT = default if tracking_uri.startswith("sqlite:") else min(default, DB_ATTEMPTS)


def default_tracking_uri(runs_dir: Path) -> str:
    """The embedded store: ``sqlite:///<runs>/mlflow.db`` (MLflow 3 refuses bare file stores)."""
    return f"sqlite:///{(Path(runs_dir) / 'mlflow.db').resolve()}"


def resolve_tracking_uri(explicit: str | None, runs_dir: Path) -> str:
    """The URI in force for this invocation; its userinfo runs up to the last ``@`` before the host."""
    return userinfo_url(explicit or os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri(runs_dir))
