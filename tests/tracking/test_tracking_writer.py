"""The batched MLflow writer and the bulk enqueue: same records as the one-by-one paths."""

from __future__ import annotations

import pytest

from ablate import tracking
from ablate.mixture import Mixture
from ablate.result import TrialResult
from ablate.tracking.client import mlflow_client

MIX = Mixture(name="v200-b0.50-s1", volume=200, proportions={"caption": 0.8, "count": 0.2}, seed=1)
RESULT = TrialResult(
    metrics={"score": 0.75, "accuracy/Science": 0.5},
    counts={"caption": 160, "count": 40},
    selection_hash="abc123",
    row_ids=("r1", "r2"),
    seconds=1.5,
    info={"tokens_per_second": 900.0, "device": "cpu", "loss_curve": [[1, 2.5], [2, 1.75]]},
)


def _record(client: object, run: object) -> dict[str, object]:
    info, data = run.info, run.data  # type: ignore[attr-defined]
    tags = {
        k: v for k, v in data.tags.items() if k not in ("optuna.trial_number", "mlflow.runName")
    }
    return {
        "status": info.status,
        "user": info.user_id,
        "stage": info.lifecycle_stage,
        "params": data.params,
        "metrics": data.metrics,
        "loss_curve": [
            (h.step, h.value) for h in client.get_metric_history(info.run_id, "train/loss")
        ],  # type: ignore[attr-defined]
        "tags": tags,
        "artifacts": [a.path for a in client.list_artifacts(info.run_id)],  # type: ignore[attr-defined]
        "artifact_root": info.artifact_uri.rsplit("/", 2)[0],
        "ended": info.end_time is not None and info.end_time >= info.start_time,
    }


def test_batched_runs_equal_client_runs(make_job) -> None:
    job = make_job()
    parent = tracking.start_sweep(job)
    client = mlflow_client(job.tracking_uri)
    tracking.log_trial(job, parent, 1, MIX, RESULT, "COMPLETE")
    tracking.log_trial(job, parent, 3, MIX, None, "FAIL", error="ValueError: boom")
    with tracking.RunWriter(job, parent) as writer:
        writer.submit(2, MIX, RESULT, "COMPLETE", seconds=1.5)
        writer.submit(4, MIX, None, "FAIL", error="ValueError: boom")
        # a run that exists already (a long trial) is finished through the client
        running = tracking.start_trial(job, parent, 5, MIX)
        writer.submit(5, MIX, RESULT, "COMPLETE", run_id=running, seconds=3.0)
    assert writer.written == 3 and not writer.failed
    runs = {r.data.tags["optuna.trial_number"]: r for r in tracking.child_runs(job, parent)}
    assert sorted(runs) == ["1", "2", "3", "4", "5"]
    assert _record(client, runs["2"]) == _record(client, runs["1"])
    assert _record(client, runs["4"]) == _record(client, runs["3"])
    assert _record(client, runs["5"]) == _record(client, runs["1"])
    assert runs["2"].info.run_name == "v200-b0.50-s1 #2"
    assert _record(client, runs["2"])["loss_curve"] == [(1, 2.5), (2, 1.75)]  # every step
    assert runs["2"].info.start_time <= runs["2"].info.end_time - 1000  # it ran 1.5 s
    assert not tracking.child_runs(job, parent, status="RUNNING")


def test_writer_reports_runs_it_could_not_write(make_job) -> None:
    job = make_job()
    parent = tracking.start_sweep(job)
    writer = tracking.RunWriter(job, parent)
    writer.submit(1, MIX, RESULT, "COMPLETE", run_id="0" * 32)  # no such run
    with pytest.raises(RuntimeError, match="1 trial"):
        writer.close()
