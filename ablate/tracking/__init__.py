"""MLflow tracking: one parent run per sweep, one child run per Optuna trial. This package is
ablate's only importer of mlflow (inside its functions). Only re-exports: the client and value
rules (`client`), runs (`runs`), the batched writer (`writer`), private-MLflow fast paths
(`mlflow_fast`), the server's refusals (`server`)."""

from ablate.tracking.client import check_local_store
from ablate.tracking.mlflow_fast import copy_run_artifacts, find_sweep_run_sqlite
from ablate.tracking.runs import (
    child_runs,
    find_sweep_run,
    finish_sweep,
    log_parent_artifact,
    log_parent_artifacts,
    log_trial,
    mark_killed,
    start_sweep,
    start_trial,
    sweep_links,
    tag_sweep_judge,
    trial_params,
)
from ablate.tracking.server import check_tracking_server, refused_request
from ablate.tracking.writer import RunWriter, insert_finished_runs

__all__ = [
    "RunWriter",
    "check_local_store",
    "check_tracking_server",
    "child_runs",
    "copy_run_artifacts",
    "find_sweep_run",
    "find_sweep_run_sqlite",
    "finish_sweep",
    "insert_finished_runs",
    "log_parent_artifact",
    "log_parent_artifacts",
    "log_trial",
    "mark_killed",
    "refused_request",
    "start_sweep",
    "start_trial",
    "sweep_links",
    "tag_sweep_judge",
    "trial_params",
]
