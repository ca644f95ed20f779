"""Find the infertune trial behind an MLflow run id (for ``infertune export RUN_ID``)."""

from __future__ import annotations

from pathlib import Path

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

from tuner.tracking.uri import bound_db_retries
from tuner.util.errors import UserError
from tuner.util.redact import first_line, redact_text


def find_trial(tracking_uri: str, run_id: str) -> tuple[str, int, str, str] | None:
    """(infertune run, trial, task file, trial's MLflow run id); a parent run resolves to its best trial."""
    if tracking_uri.startswith("sqlite:///") and not Path(tracking_uri.removeprefix("sqlite:///")).is_file():
        return None  # no store yet: opening one would create it (a lookup writes nothing)
    bound_db_retries(tracking_uri)
    try:
        return _find_trial(MlflowClient(tracking_uri=tracking_uri), run_id)
    except (KeyError, ValueError):  # a run whose tags are not infertune's
        return None
    except Exception as error:  # an unreachable store: say so, not "no such run"
        raise UserError(f"cannot look the run id up in the MLflow store: {redact_text(first_line(error))}",
                        field="RUN_ID", value=run_id) from None


def _find_trial(client: MlflowClient, run_id: str) -> tuple[str, int, str, str] | None:
    try:
        run = client.get_run(run_id)
    except MlflowException:
        return None
    tags = run.data.tags
    if tags.get("infertune.kind") == "invocation":
        parent_tags = tags
        best = tags.get("best_trial")
        if best is None:
            return None
        children = client.search_runs([run.info.experiment_id], f"tags.`mlflow.parentRunId` = '{run_id}' and "
                                      f"tags.`infertune.trial` = '{best}'", max_results=1)
        if not children:
            return None
        run, tags = children[0], children[0].data.tags
    else:
        parent = tags.get("mlflow.parentRunId")
        parent_tags = client.get_run(parent).data.tags if parent else {}
    if "infertune.trial" not in tags:
        return None
    return tags["infertune.run"], int(tags["infertune.trial"]), parent_tags.get("task_file", ""), run.info.run_id
