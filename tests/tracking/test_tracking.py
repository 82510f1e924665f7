from __future__ import annotations

import json
from pathlib import Path

from ablate import tracking
from ablate.config import redact
from ablate.mixture import Mixture
from ablate.result import TrialResult
from ablate.tracking.client import mlflow_client

MIX = Mixture(name="v200-b0.50-s1", volume=200, proportions={"caption": 0.8, "count": 0.2}, seed=1)


def test_parent_run_is_found_again_and_children_are_linked(make_job, tmp_path: Path) -> None:
    job = make_job()
    parent = tracking.start_sweep(job)
    client = mlflow_client(job.tracking_uri)
    run = client.get_run(parent)
    assert run.data.tags["ablate.role"] == "sweep" and run.data.tags["ablate.study"] == "test-study"
    assert run.data.params["objective.metric"] == "score"
    assert [a.path for a in client.list_artifacts(parent)] == ["job.yaml", "jobs"]
    assert run.data.tags["ablate.last_job"].startswith("jobs/")
    # artifacts live beside the SQLite database, not in the current folder
    assert str(tmp_path) in client.get_experiment(run.info.experiment_id).artifact_location
    tracking.finish_sweep(job, parent, {"n_complete": 3, "best_value": 0.5})
    assert client.get_run(parent).info.status == "FINISHED"
    assert tracking.start_sweep(job) == parent  # resume: same parent, RUNNING again
    assert client.get_run(parent).info.status == "RUNNING"

    result = TrialResult(
        metrics={"score": 0.75, "accuracy/Science": 0.5},
        counts={"caption": 160, "count": 40},
        selection_hash="abc123",
        row_ids=("r1", "r2"),
        seconds=1.5,
        info={"tokens_per_second": 900.0, "device": "cpu", "loss_curve": [[1, 2.5], [2, 1.75]]},
    )
    child = tracking.log_trial(job, parent, 7, MIX, result, "COMPLETE")
    run = client.get_run(child)
    assert run.info.status == "FINISHED"
    assert run.data.tags["mlflow.parentRunId"] == parent
    assert run.data.tags["optuna.trial_number"] == "7"
    assert run.data.tags["ablate.selection_hash"] == "abc123"
    assert run.data.params["p/caption"] == "0.8" and run.data.params["volume"] == "200"
    assert run.data.params["seed"] == "1" and run.data.params["objective"] == "python"
    assert "lora.r" not in run.data.params  # a python trial trains no model
    assert abs(float(run.data.params["balance"]) - 0.7219281) < 1e-6
    assert run.data.metrics == {
        "score": 0.75,
        "accuracy/Science": 0.5,
        "info/tokens_per_second": 900.0,
        "seconds": 1.5,
        "rows/caption": 160.0,
        "rows/count": 40.0,
        "train/loss": 1.75,  # its last step; the chart has each step
    }
    history = client.get_metric_history(child, "train/loss")
    assert [(h.step, h.value) for h in history] == [(1, 2.5), (2, 1.75)]
    local = client.download_artifacts(child, "selection.json", str(tmp_path))
    assert json.loads(Path(local).read_text())["row_ids"] == ["r1", "r2"]

    failed = tracking.log_trial(job, parent, 8, MIX, None, "FAIL", error="ValueError: boom")
    assert client.get_run(failed).info.status == "FAILED"
    assert client.get_run(failed).data.tags["ablate.error"] == "ValueError: boom"

    running = tracking.start_trial(job, parent, 9, MIX)
    assert tracking.mark_killed(job, parent, [9, 10]) == 1
    assert client.get_run(running).info.status == "KILLED"
    assert len(tracking.child_runs(job, parent)) == 3

    report = tmp_path / "report.md"
    report.write_text("# report\n")
    tracking.log_parent_artifact(job, parent, report)
    assert "report.md" in [a.path for a in client.list_artifacts(parent)]


def test_two_studies_of_one_name_in_two_storages_get_two_parents(make_job, tmp_path: Path) -> None:
    """A shared tracking store: studies named alike in other Optuna storages (another user's
    `less-is-more`, an Optuna file started afresh) never share a parent, so neither's runs are
    taken for the other's (`backfill_runs` matches child runs by trial number). A parent from
    before ablate tagged the study's id is adopted by the study of its storage only."""
    from ablate.tracking.mlflow_fast import find_sweep_run_sqlite

    a, b, c, d = (make_job(storage=f"sqlite:///{tmp_path}/{n}.db") for n in "abcd")
    pa = tracking.start_sweep(a, "uid-a")
    pb = tracking.start_sweep(b, "uid-b")
    client = mlflow_client(a.tracking_uri)
    assert pa != pb and client.get_run(pb).info.run_name == "sweep-test-study-uid-b"
    assert client.get_run(pa).info.run_name == "sweep-test-study"
    assert tracking.start_sweep(a, "uid-a") == pa and tracking.start_sweep(b, "uid-b") == pb
    for job, uid, parent in ((a, "uid-a", pa), (b, "uid-b", pb)):
        assert tracking.find_sweep_run(job, uid) == parent
        assert find_sweep_run_sqlite(job, uid)[0] == parent  # type: ignore[index]
    assert tracking.find_sweep_run(c, "uid-c") is None
    assert find_sweep_run_sqlite(c, "uid-c") == (None, None)
    tags = {
        "ablate.study": "test-study",
        "ablate.role": "sweep",
        "optuna.storage": redact(c.storage_url),
    }
    experiment = client.get_run(pa).info.experiment_id  # a parent as ablate made them before
    legacy = client.create_run(experiment, tags=tags).info.run_id  # (no study id tag)
    assert tracking.find_sweep_run(d, "uid-d") is None  # another storage's: not adopted
    assert tracking.start_sweep(d, "uid-d") not in (pa, pb, legacy)
    assert tracking.find_sweep_run(c, "uid-c") == legacy  # its own storage's: adopted
    assert tracking.start_sweep(c, "uid-c") == legacy
    assert client.get_run(legacy).data.tags["ablate.study_uid"] == "uid-c"
    assert tracking.find_sweep_run(c) == pa  # no id known (never swept since): the oldest


def test_the_parent_params_are_the_keys_the_design_reads() -> None:
    """Review m: a 12-trial grid's parent showed `design.n_trials=20`, `design.promote`,
    `design.sampler` and `mixture=None`: keys its design never read, and unset ones."""
    from ablate.config import JobSpec, build
    from ablate.tracking.runs import _job_params

    def design_params(**design: object) -> list[str]:
        job = build(JobSpec, {"study": "x", "task_types": ["a", "b"],
                              "objective": {"kind": "sim", "metric": "score"},
                              "design": {"volumes": [100], **design}}, "t")  # fmt: skip
        params = _job_params(job)
        assert "None" not in params.values()
        return sorted(k.removeprefix("design.") for k in params if k.startswith("design."))

    common = ["kind", "seeds", "volumes"]
    assert design_params(kind="grid") == sorted([*common, "balance", "concentration"])
    assert design_params(kind="lattice") == sorted([*common, "centroid", "divisions"])
    search = design_params(kind="search", warm_start="lattice")
    assert "divisions" in search and "sampler" in search and "promote" not in search
    ladder = design_params(kind="ladder", ladder_of="random")
    assert {"promote", "promote_within", "ladder_of", "n_trials"} <= set(ladder)
    assert "balance" not in ladder
