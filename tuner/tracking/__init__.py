"""MLflow tracking: the Tracker interface, the MLflow mirror of records.jsonl (never the only copy), and the UI."""

from tuner.tracking.uri import default_tracking_uri, resolve_tracking_uri

__all__ = ["default_tracking_uri", "resolve_tracking_uri"]
