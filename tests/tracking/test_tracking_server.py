"""Against a real `mlflow server` on loopback (the `mlflow_server` fixture of conftest.py): the study's experiment opens in the UI's training
view, and finished trials print no "View run" lines (the sweep's links are printed once)."""

from __future__ import annotations

import pytest

from ablate import tracking
from ablate.mixture import Mixture
from ablate.tracking.client import EXPERIMENT_KIND, mlflow_client

pytestmark = pytest.mark.slow  # the server takes ~20 s to start (its migrations)


def test_trials_print_no_links_and_the_experiment_opens_as_training_runs(
    mlflow_server: str, make_job, capfd: pytest.CaptureFixture[str]
) -> None:
    job = make_job(study="server-study", tracking=mlflow_server)
    parent = tracking.start_sweep(job)
    mixture = Mixture(name="m", volume=100, proportions={"caption": 0.5, "count": 0.5})
    for number in range(3):
        tracking.log_trial(job, parent, number, mixture, None, "FAIL", error="boom")
    tracking.finish_sweep(job, parent, {"n_complete": 0})
    out = capfd.readouterr().out
    assert "View run" not in out and "View experiment" not in out
    exp = mlflow_client(mlflow_server).get_experiment_by_name("server-study")
    assert exp.tags[EXPERIMENT_KIND[0]] == "custom_model_development"
    links = tracking.sweep_links(job, parent)
    assert links == (
        f"MLflow: {mlflow_server}/#/experiments/{exp.experiment_id}/runs/{parent}"
        "?workflowType=machine_learning (the sweep; its trials are child runs)"
    )
    local = tracking.sweep_links(make_job(), parent)  # a SQLite store: the command, then the link
    assert local.startswith("MLflow: `mlflow ui --backend-store-uri sqlite:///")
    assert "`, then http://127.0.0.1:5000/#/experiments/" in local
    assert local.endswith("?workflowType=machine_learning (the sweep's run)")


def test_an_experiment_made_before_gets_the_training_view(mlflow_server: str, make_job) -> None:
    client = mlflow_client(mlflow_server)
    exp_id = client.create_experiment("older-study")
    assert EXPERIMENT_KIND[0] not in client.get_experiment(exp_id).tags
    tracking.start_sweep(make_job(study="older-study", tracking=mlflow_server))
    assert client.get_experiment(exp_id).tags[EXPERIMENT_KIND[0]] == "custom_model_development"
