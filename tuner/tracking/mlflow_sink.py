"""MlflowSink: one parent run per invocation, one nested run per trial; every upload guarded.

MLflow is a mirror of records.jsonl: an upload that fails prints one warning (redacted) and the run goes on.
HTTP retries and timeouts are lowered (``tuner.tracking.uri``) so an unreachable server costs seconds, not
minutes; ``infertune sync`` uploads what is missing later, without duplicates (trials are keyed by the
``infertune.trial`` tag).
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from tuner.records import Record
from tuner.tracking.base import Tracker
from tuner.tracking.uri import bound_db_retries, bound_http_waits
from tuner.util.redact import first_line, redact_text

bound_http_waits()  # already done by importing tuner.tracking; said here too, where the client is made

PARENT_KIND, TRIAL_KIND = "invocation", "trial"
SECRET_MARKERS = ("token", "secret", "password", "api_key", "apikey")


def _versions() -> dict[str, str]:
    from importlib import metadata

    versions = {}
    for package in ("infertune", "torch", "transformers", "optuna", "stable-baselines3", "mlflow"):
        try:
            versions[f"version.{package}"] = metadata.version(package)
        except metadata.PackageNotFoundError:
            continue
    return versions


def _clean(values: dict[str, Any]) -> dict[str, str]:
    """Stringified params/tags, with anything that looks like a secret left out."""
    return {key: str(value)[:500] for key, value in values.items()
            if not any(marker in key.lower() for marker in SECRET_MARKERS)}


class MlflowSink(Tracker):
    """Mirrors one infertune run into an MLflow experiment named after the task."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_root: Path | None = None,
                 warn: Callable[[str], None] | None = None):
        self.tracking_uri = tracking_uri
        self.experiment_name = experiment
        self.artifact_root = artifact_root
        self.parent_id: str | None = None
        self.run_name: str | None = None
        self.experiment_id: str | None = None
        self.trial_runs: dict[str, str] = {}  # "<infertune run>:<trial>" → MLflow run id
        self.failures = 0
        self._warn = warn or (lambda message: print(message, file=sys.stderr, flush=True))
        self._training_step = 0
        bound_db_retries(tracking_uri)  # a database store is connected to here
        self.client: MlflowClient | None = self._guard("connect", lambda: MlflowClient(tracking_uri=tracking_uri))

    def _guard(self, what: str, action: Callable[[], Any]) -> Any:
        """Run one MLflow call; a failure is counted, and only the first is printed (a down server fails them all)."""
        try:
            return action()
        except Exception as error:  # MLflow is a mirror: nothing it does may stop a run
            self.failures += 1
            if self.failures == 1:
                self._warn(redact_text(f"infertune: warning: MLflow upload failed ({what}): {first_line(error)}; the "
                                       "run goes on (records.jsonl has everything; infertune sync uploads it later)"))
            return None

    def _experiment(self) -> str:
        found = self.client.get_experiment_by_name(self.experiment_name)
        if found is not None:
            return found.experiment_id
        location = None
        if self.artifact_root is not None:
            location = (self.artifact_root / self.experiment_name).resolve().as_uri()
        # "custom_model_development" makes the UI open on the runs table, not the GenAI traces overview
        return self.client.create_experiment(self.experiment_name, artifact_location=location,
                                             tags={"mlflow.experimentKind": "custom_model_development"})

    def start(self, run_name: str, params: dict[str, Any], tags: dict[str, Any]) -> str | None:
        """Create (or find, for a resumed sync) the parent run of this invocation."""
        self.run_name = run_name
        if self.client is None:
            return None  # could not connect: already said

        def create() -> str:
            self.experiment_id = self._experiment()
            existing = self.client.search_runs(
                [self.experiment_id], f"tags.`infertune.run` = '{run_name}' and tags.`infertune.kind` = "
                f"'{PARENT_KIND}'", max_results=1)
            if existing:
                run_id = existing[0].info.run_id
                nested = self.client.search_runs([self.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}'",
                                                 max_results=50000)
                self.trial_runs = {f"{run.data.tags.get('infertune.run')}:{run.data.tags['infertune.trial']}":
                                   run.info.run_id for run in nested if "infertune.trial" in run.data.tags}
                return run_id
            run = self.client.create_run(self.experiment_id, run_name=run_name, tags=_clean(
                {**tags, **_versions(), "infertune.run": run_name, "infertune.kind": PARENT_KIND}))
            self.client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in _clean(params).items()])
            return run.info.run_id

        self.parent_id = self._guard("start run", create)
        return self.parent_id

    def log_record(self, record: Record, extra_tags: dict[str, Any] | None = None) -> str | None:
        """One nested run per trial: params = config, metrics = measured values, tags = status and cached."""
        key = f"{record.run}:{record.trial}"
        if key in self.trial_runs:
            return self.trial_runs[key]  # already mirrored: sync never duplicates
        if self.parent_id is None:
            self.failures += 1  # nothing to hang it on (the start failed, and said so): not tried
            return None

        def upload() -> str:
            tags = {"mlflow.parentRunId": self.parent_id, "infertune.kind": TRIAL_KIND,
                    "infertune.trial": record.trial, "infertune.run": record.run, "status": record.status,
                    "cached": record.cached, "feasible": record.feasible, "agent": record.agent,
                    **(extra_tags or {})}
            if record.error:
                tags["error"] = f"{record.error.get('type')}: {record.error.get('message')}"
            if record.status == "pruned":
                tags["pruned"] = (record.info.get("pruned") or {}).get("reason")
            run = self.client.create_run(self.experiment_id, run_name=f"{record.agent}-trial-{record.trial:04d}",
                                         tags=_clean(tags))
            stamp = int(time.time() * 1000)
            metrics = [Metric(key, float(value), stamp, 0) for key, value in record.metrics.items()
                       if isinstance(value, int | float) and not isinstance(value, bool)]
            metrics.append(Metric("objective", float(record.objective), stamp, 0))
            self.client.log_batch(run.info.run_id, metrics=metrics,
                                  params=[Param(key, str(value)) for key, value in record.config.items()])
            self.client.set_terminated(run.info.run_id, "FINISHED" if record.status in ("ok", "unstable", "pruned")
                                       else "FAILED")
            return run.info.run_id

        run_id = self._guard(f"trial {record.trial}", upload)
        if run_id is not None:
            self.trial_runs[key] = run_id
        return run_id

    def run_id_of(self, record: Record) -> str | None:
        """The MLflow run mirroring ``record``, if it was uploaded."""
        return self.trial_runs.get(f"{record.run}:{record.trial}")

    def log_training(self, metrics: dict[str, float], step: int) -> None:
        """Training metrics (PPO's losses, entropy, ...) on the parent run."""
        if self.parent_id is None:
            return
        stamp = int(time.time() * 1000)
        batch = [Metric(key.replace("/", "."), float(value), stamp, step) for key, value in metrics.items()]
        self._guard("training metrics", lambda: self.client.log_batch(self.parent_id, metrics=batch))

    def mark_deployable(self, record: Record, artifacts: Sequence[Path]) -> None:
        """Tag the best trial's run ``deployable=true`` and attach its files (config, exports, plots, table)."""
        run_id = self.run_id_of(record)
        if run_id is None:
            return

        def upload() -> None:
            self.client.set_tag(run_id, "deployable", "true")
            self.client.set_tag(self.parent_id, "best_trial", str(record.trial))
            self.client.log_text(run_id, json.dumps(record.config, indent=2), "config.json")
            for path in artifacts:
                if path.is_dir():
                    self.client.log_artifacts(run_id, str(path), path.name)
                elif path.is_file():
                    self.client.log_artifact(run_id, str(path))

        self._guard(f"deployable trial {record.trial}", upload)

    def attach(self, paths: Sequence[Path]) -> None:
        """Attach files to the parent run (a trained policy, a plot)."""
        if self.parent_id is None:
            return
        for path in paths:
            self._guard(f"artifact {path.name}", lambda path=path: self.client.log_artifact(self.parent_id, str(path)))

    def finish(self, summary: dict[str, Any] | None = None) -> None:
        """Close the parent run with the run's headline numbers; say how many uploads failed, if any did."""
        if self.parent_id is not None:
            self._guard("finish run", lambda: self._close(summary))
        if self.failures:
            again = f"infertune sync {self.run_name}" if self.run_name else "infertune sync RUN"
            self._warn(f"infertune: warning: {self.failures} MLflow upload(s) failed; {again} uploads what is missing")

    def _close(self, summary: dict[str, Any] | None) -> None:
        if summary:
            stamp = int(time.time() * 1000)
            values = {"measurements": summary.get("measurements"), "trials": summary.get("trials")}
            if summary.get("best"):
                values["best_objective"] = summary["best"]["objective"]
                values["best_tokens_per_s"] = summary["best"]["metrics"].get("tokens_per_s")
            self.client.log_batch(self.parent_id, metrics=[Metric(k, float(v), stamp, 0)
                                                           for k, v in values.items() if v is not None])
        self.client.set_terminated(self.parent_id, "FINISHED")
