"""Direct links into the MLflow UI: each experiment's runs table, a run's deployable trial and its parent run.

MLflow 3.17's experiment page opens on its GenAI overview (the UI's GenAI / model-training toggle defaults to
GenAI), and its runs table folds every trial under its run's parent. ``infertune ui`` prints links that open
elsewhere: the runs table in a view MLflow itself can share (an experiment tag ``mlflow.sharedViewState.<key>``,
the state its Share button writes): grouped by infertune run, groups open, best objective first, the trade-off
metrics as columns.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from mlflow.tracking import MlflowClient

PARENT_KIND = "invocation"
VIEW_KEY = "infertune-runs"
SHARED_VIEW_TAG = "mlflow.sharedViewState."
RUNS_VIEW = {  # MLflow's shareable view state: facets and UI state, as its own Share button saves them
    "groupBy": {"aggregateFunction": "max", "groupByKeys": [{"mode": "tag", "groupByData": "infertune.run"}]},
    "groupsExpanded": {},
    "orderByKey": "metrics.`objective`",
    "orderByAsc": False,
    "selectedColumns": ["metrics.`objective`", "metrics.`tokens_per_s`", "metrics.`latency_p95_s`",
                        "metrics.`top1_agree`", "metrics.`peak_mem_mb`", "tags.`deployable`", "tags.`status`"],
}


def runs_table_url(base: str, experiment_id: str) -> str:
    """The runs table of one experiment in infertune's view (``ensure_runs_view`` must have saved it)."""
    return f"{base}/#/experiments/{experiment_id}/runs?viewStateShareKey={VIEW_KEY}"


def ensure_runs_view(client: MlflowClient, experiment_id: str) -> None:
    """Save infertune's runs-table view on the experiment (the same tag again when it is already there)."""
    client.set_experiment_tag(experiment_id, SHARED_VIEW_TAG + VIEW_KEY, json.dumps(RUNS_VIEW))


def run_url(base: str, experiment_id: str, run_id: str) -> str:
    """One run's page."""
    return f"{base}/#/experiments/{experiment_id}/runs/{run_id}"


def experiment_links(tracking_uri: str, base: str) -> list[tuple[str, str, int]]:
    """(experiment name, link to its runs table, infertune runs in it) for every experiment with a run."""
    client = MlflowClient(tracking_uri=tracking_uri)
    links = []
    for experiment in client.search_experiments():
        parents = client.search_runs([experiment.experiment_id], f"tags.`infertune.kind` = '{PARENT_KIND}'",
                                     max_results=10_000)
        if parents:
            ensure_runs_view(client, experiment.experiment_id)
            links.append((experiment.name, runs_table_url(base, experiment.experiment_id), len(parents)))
    return links


def run_links(tracking_uri: str, base: str, run_name: str) -> list[tuple[str, str]]:
    """(label, link) for an infertune run: its deployable trial first, then the run itself; empty if unknown."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiments = [experiment.experiment_id for experiment in client.search_experiments()]
    if not experiments:
        return []
    escaped = run_name.replace("'", "\\'")
    parents = client.search_runs(experiments, f"tags.`infertune.run` = '{escaped}' and "
                                              f"tags.`infertune.kind` = '{PARENT_KIND}'", max_results=1)
    if not parents:
        return []
    parent = parents[0]
    experiment = parent.info.experiment_id
    links = []
    deployable = client.search_runs([experiment], f"tags.`mlflow.parentRunId` = '{parent.info.run_id}' and "
                                                  "tags.deployable = 'true'", max_results=1)
    if deployable:
        trial = deployable[0]
        links.append((f"deployable trial {trial.data.tags.get('infertune.trial')} ({trial.info.run_name})",
                      run_url(base, experiment, trial.info.run_id)))
    links.append((f"run {run_name} (every trial nested under it)", run_url(base, experiment, parent.info.run_id)))
    return links


def attach_to_run(tracking_uri: str, run_name: str, paths: Sequence[Path]) -> bool:
    """Attach files to the MLflow parent run of infertune run ``run_name``; False when there is none (or it fails:
    MLflow is a mirror, and the files stay in the run folder)."""
    try:
        client = MlflowClient(tracking_uri=tracking_uri)
        experiments = [experiment.experiment_id for experiment in client.search_experiments()]
        escaped = run_name.replace("'", "\\'")
        parents = client.search_runs(experiments, f"tags.`infertune.run` = '{escaped}' and "
                                                  f"tags.`infertune.kind` = '{PARENT_KIND}'", max_results=1)
        if not experiments or not parents:
            return False
        for path in paths:
            client.log_artifact(parents[0].info.run_id, str(path))
    except Exception:  # an unreachable server: the report is written all the same
        return False
    return True
