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


def test_a_server_refusing_the_host_name_stops_the_sweep_before_it_starts(
    make_job, tmp_path, capsys: pytest.CaptureFixture[str]
) -> None:
    # MLflow 3 answers 403 "Invalid Host header" to a host it was not given: 127.0.0.1 here
    # (a DNS name on a cluster). A rerun cannot help: the message names the server's option.
    import yaml
    from conftest import serve_mlflow

    from ablate.cli import main
    from ablate.config import to_dict
    from ablate.tracking import refused_request

    root = tmp_path / "server"
    root.mkdir()
    with serve_mlflow(root, "--allowed-hosts", "mlflow.example") as url:
        port = url.rsplit(":", 1)[1]
        data = to_dict(make_job(study="host-refused", tracking=url))
        job = tmp_path / "job.yaml"
        job.write_text(yaml.safe_dump(data))
        assert main(["sweep", str(job)]) != 0
        out, err = capsys.readouterr()
        fix = f"`mlflow server --allowed-hosts 127.0.0.1,127.0.0.1:{port} ...`"
        assert f"job.yaml: the MLflow server of `tracking` ({url}) refuses this host name" in err
        assert fix in err and len(err.strip().splitlines()) == 1
        assert "does not answer" not in out + err
        assert not (tmp_path / "optuna.db").exists()  # refused before the study (and Ray)
        # the same answer met later (the driver's first MLflow call) is refused alike
        with pytest.raises(Exception) as raised:
            tracking.start_sweep(make_job(study="host-refused", tracking=url))
        assert fix in (refused_request(make_job(tracking=url), raised.value) or "")
