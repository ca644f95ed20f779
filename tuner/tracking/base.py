"""The Tracker interface: where a run is mirrored as it goes (MLflow), with no-op defaults."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tuner.records import Record


class Tracker:
    """Mirrors a run somewhere other than its run folder; records.jsonl stays the source of truth.

    Every method does nothing by default, so an implementation writes only what it needs (as stable-baselines3's
    ``BaseCallback``). Each method must swallow its own failures: a mirror that is down never stops a run.
    """

    def log_record(self, record: Record) -> Any:
        """Mirror one record as soon as it is measured.

        Args:
            record: the record just appended to records.jsonl (measured, cached, or a constraint rejection).

        Returns:
            Whatever identifies the mirrored copy (an MLflow run id), or None when nothing was written.
        """
        return None

    def log_training(self, metrics: dict[str, float], step: int) -> None:
        """Mirror an agent's own training figures (PPO's losses, a learning curve).

        Args:
            metrics: figure name → value; names are the agent's own.
            step: the agent's step count when the figures were taken (monotone within a run).
        """

    def run_id_of(self, record: Record) -> str | None:
        """The mirror's id of a record logged before (to link it from exports), or None if it has none."""
        return None

    def mark_deployable(self, record: Record, artifacts: Sequence[Path]) -> None:
        """Mark ``record`` as the run's best deployable config and attach its exported serving files.

        Args:
            record: the best rankable record of the run (status ok, inside every bound).
            artifacts: files written for it (exports, the trial table); each exists when this is called.
        """

    def attach(self, paths: Sequence[Path]) -> None:
        """Attach files of the whole run (report, plots, summary) to the run's mirror; each path exists."""

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Close the run's mirror once, after its last record.

        Args:
            summary: summary.json's content for a finished run; None when the run ended without one (a compare's
                parent run, or an interrupted run).
        """
