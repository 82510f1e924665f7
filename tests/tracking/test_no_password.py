"""A password in `storage` or `tracking` never reaches the MLflow store: not the parent run's
params, tags or job files (`job.yaml`, `jobs/<stamp>.yaml`), nor the tracking database."""

from __future__ import annotations

from pathlib import Path

import pytest

from ablate import tracking
from ablate.tracking.client import mlflow_client

SECRET = "S3cretPW"


def _artifacts(client, run_id: str, path: str | None = None) -> list[str]:
    out: list[str] = []
    for item in client.list_artifacts(run_id, path):
        out += _artifacts(client, run_id, item.path) if item.is_dir else [item.path]
    return out


def test_the_sweeps_run_records_the_job_without_its_passwords(make_job, tmp_path: Path) -> None:
    storage = f"postgresql://rev:{SECRET}@127.0.0.1:1/x"
    job = make_job(storage=storage)
    parent = tracking.start_sweep(job, "uid-1")
    assert tracking.start_sweep(job, "uid-1") == parent  # a resume logs `jobs/<stamp>.yaml`
    client = mlflow_client(job.tracking_uri)
    data = client.get_run(parent).data
    assert data.params["storage"] == "postgresql://rev:***@127.0.0.1:1/x"
    assert data.params["tracking"] == job.tracking  # no password: as the file says
    assert data.tags["optuna.storage"] == "postgresql://rev:***@127.0.0.1:1/x"
    files = _artifacts(client, parent)
    assert "job.yaml" in files and any(f.startswith("jobs/") for f in files)
    for name in files:
        text = Path(client.download_artifacts(parent, name, str(tmp_path / "dl"))).read_text()
        assert "storage: postgresql://rev:***@127.0.0.1:1/x" in text
        assert SECRET not in text
    assert SECRET.encode() not in (tmp_path / "mlflow.db").read_bytes()
    assert all(SECRET not in str(v) for v in [*data.params.values(), *data.tags.values()])


def test_mlflow_errors_do_not_quote_the_tracking_password(make_job) -> None:
    """MLflow's own message quoted the request URL with its password (`API request to
    http://u:S3cretPW@127.0.0.1:1/api/...`): what `ablate report` or a sweep would print."""
    from conftest import free_port
    from mlflow.exceptions import MlflowException

    port = free_port()  # nothing listens there
    job = make_job(tracking=f"http://rev:{SECRET}@127.0.0.1:{port}")
    with pytest.raises(MlflowException) as err:
        tracking.find_sweep_run(job)
    assert SECRET not in str(err.value)
    assert f"API request to http://rev:***@127.0.0.1:{port}/api/" in str(err.value)
