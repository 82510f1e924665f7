from __future__ import annotations

import math
import os
import time
from typing import Any

import optuna
import pytest
from objectives_for_tests import landscape, marker_path
from optuna.trial import TrialState

from ablate import tracking
from ablate.errors import UserError
from ablate.plan import design_mixtures
from ablate.study import driver_lock, enqueue_design, open_study
from ablate.study.lock import _attr_lock
from ablate.sweep import SweepProgress, run_sweep, study_status
from ablate.tracking.client import mlflow_client

TYPES = ["caption", "count", "compare"]
GRID = {"volumes": [100, 400], "balance": [0.0, 0.5, 1.0], "seeds": [0, 1]}


def states(job: Any) -> dict[str, int]:
    out: dict[str, int] = {}
    for t in open_study(job, create=False).get_trials(deepcopy=False):
        out[t.state.name] = out.get(t.state.name, 0) + 1
    return out


def test_grid_sweep_records_every_trial_and_resume_adds_nothing(ray_session, make_job) -> None:
    job = make_job(design=GRID, resources={"max_in_flight": 2})
    events: list[SweepProgress] = []
    summary = run_sweep(job, TYPES, progress=events.append)
    assert summary.n_complete == 12 and summary.n_failed == 0 and summary.n_run == 12

    trials = open_study(job, create=False).get_trials()
    assert len(trials) == 12 and all(t.state == TrialState.COMPLETE for t in trials)
    for t in trials:
        a = t.user_attrs
        assert set(a) >= {
            "proportions",
            "volume",
            "seed",
            "balance",
            "design_key",
            "metrics",
            "retries",
        }
        assert math.isclose(sum(a["proportions"].values()), 1.0, abs_tol=1e-12)
        level = float(a["mixture_name"].split("-b")[1].split("-")[0])
        assert abs(a["balance"] - level) < 1e-6
        assert t.value == pytest.approx(landscape(a["proportions"], a["volume"], a["seed"]))
        assert a["metrics"] == {"score": t.value}
    best = max(trials, key=lambda t: t.value)
    assert summary.best_trial == best.number and summary.best_value == best.value
    assert summary.best_mixture is not None and summary.best_mixture.volume == 400
    assert summary.best_mixture.proportions == best.user_attrs["proportions"]
    assert len(events) == 12 and events[-1].done == 12 and events[-1].total == 12
    assert events[-1].best_value == best.value

    # MLflow: one parent, one FINISHED child per trial, linked by trial number, params present
    children = tracking.child_runs(job, summary.parent_run_id)
    assert len(children) == 12
    by_number = {int(r.data.tags["optuna.trial_number"]): r for r in children}
    assert set(by_number) == {t.number for t in trials}
    for t in trials:
        run = by_number[t.number]
        assert run.info.status == "FINISHED"
        assert run.data.metrics["score"] == pytest.approx(t.value)
        assert float(run.data.params["p/caption"]) == pytest.approx(
            t.user_attrs["proportions"]["caption"], abs=1e-5
        )
        assert run.data.params["volume"] == str(t.user_attrs["volume"])
        assert {"balance", "seed", "objective", "mixture"} <= set(run.data.params)
        assert "lora.r" not in run.data.params  # a python objective trains no model

    # the parent: the best mixture by its mean over seeds (not the luckiest seed), the study's
    # metric named for optuna-dashboard, no training params for an objective that trains none
    parent = mlflow_client(job.tracking_uri).get_run(summary.parent_run_id)
    means: dict[str, list[float]] = {}
    for t in trials:
        means.setdefault(t.user_attrs["mixture_name"].rsplit("-s", 1)[0], []).append(t.value)
    top = max(means, key=lambda k: sum(means[k]) / len(means[k]))
    assert parent.data.tags["ablate.best_mixture"] == top
    assert parent.data.metrics["best_mixture_mean"] == pytest.approx(sum(means[top]) / 2)
    assert parent.data.metrics["best_mixture_seeds"] == 2
    assert "objective.metric" in parent.data.params and "model.path" not in parent.data.params
    assert open_study(job, create=False).metric_names == ["score"]
    assert by_number[0].info.run_name == f"{trials[0].user_attrs['mixture_name']} #0"

    # resume of a finished study: nothing new, the same parent run
    again = run_sweep(job, TYPES, progress=None)
    assert again.n_run == 0 and again.n_complete == 12
    assert again.parent_run_id == summary.parent_run_id
    assert len(open_study(job, create=False).get_trials()) == 12
    text = study_status(job)
    assert (
        "complete 12" in text and f"trial {best.number}" in text and "driver: none running" in text
    )


def test_dead_driver_trials_are_failed_and_rerun(ray_session, make_job) -> None:
    job = make_job(design={"volumes": [100], "balance": [0.5, 1.0], "seeds": [0, 1]})
    design = design_mixtures(job, TYPES)
    study = open_study(job)
    enqueue_design(study, design[:3])
    dead = [study.ask(), study.ask()]  # a driver that died with two trials in flight
    parent = tracking.start_sweep(job)
    stale_run = tracking.start_trial(job, parent, dead[0].number, design[0])
    text = study_status(job)  # no time left promised: nothing runs them until a sweep
    assert "driver: none running" in text and "left" not in text.split("driver:")[0]
    assert "the 2 running trial(s) were left by a driver that is gone" in text

    summary = run_sweep(job, TYPES, progress=None)
    text = study_status(job)
    # the best single trial, and the best mixture by its mean over its 2 seeds
    means: dict[tuple[float, ...], list[float]] = {}
    for t in open_study(job, create=False).get_trials():
        if t.state == TrialState.COMPLETE:
            means.setdefault(tuple(t.user_attrs["proportions"].values()), []).append(t.value)
    top = max(sum(v) / len(v) for v in means.values())
    assert f"best mixture by its mean over seeds: score {top:.4g} over 2 seed(s)" in text
    assert "best single trial score = " in text

    trials = {t.number: t for t in open_study(job, create=False).get_trials()}
    for t in dead:
        assert trials[t.number].state == TrialState.FAIL
        assert "driver died" in trials[t.number].user_attrs["error"]
    assert states(job) == {"COMPLETE": 4, "FAIL": 2}
    assert summary.n_complete == len(design) == 4
    keys = [t.user_attrs["design_key"] for t in trials.values() if t.state == TrialState.COMPLETE]
    assert sorted(keys) == sorted({t.user_attrs["design_key"] for t in trials.values()})
    requeued = [t for t in trials.values() if "requeued_from" in t.user_attrs]
    assert sorted(t.user_attrs["requeued_from"] for t in requeued) == sorted(t.number for t in dead)
    assert mlflow_client(job.tracking_uri).get_run(stale_run).info.status == "KILLED"


def test_lock_refuses_a_second_driver(make_job) -> None:
    job = make_job()
    study = open_study(job)
    with driver_lock(job, study):
        with pytest.raises(UserError, match=rf"pid {os.getpid()}, since"):
            run_sweep(job, TYPES, progress=None)
        assert f"pid {os.getpid()}" in study_status(job)
    assert len(study.get_trials()) == 0


def test_database_lock_refuses_a_live_holder_and_takes_a_stale_one() -> None:
    study = optuna.create_study()
    study.set_user_attr(
        "ablate.driver_lock",
        {"host": "other", "pid": 1, "since": "earlier", "heartbeat": time.time()},
    )
    with pytest.raises(UserError, match="host other, pid 1, since earlier"), _attr_lock(study):
        pass
    study.set_user_attr(
        "ablate.driver_lock", {"host": "other", "pid": 1, "heartbeat": time.time() - 3600}
    )
    with _attr_lock(study):
        assert study.user_attrs["ablate.driver_lock"]["pid"] == os.getpid()
    assert study.user_attrs["ablate.driver_lock"] == {}


def test_trial_exception_is_recorded_and_the_sweep_goes_on(ray_session, make_job) -> None:
    job = make_job(target="objectives_for_tests:fails_for_seed_1", design={"seeds": [0, 1, 2]})
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 2 and summary.n_failed == 1
    failed = [t for t in open_study(job, create=False).get_trials() if t.state == TrialState.FAIL]
    assert len(failed) == 1 and failed[0].user_attrs["seed"] == 1
    assert "ValueError: bad luck for seed 1" in failed[0].user_attrs["error"]
    runs = tracking.child_runs(job, summary.parent_run_id, status="FAILED")
    assert len(runs) == 1 and "bad luck" in runs[0].data.tags["ablate.error"]


def test_worker_death_is_retried_on_a_new_worker(ray_session, make_job) -> None:
    volume = 1000 + os.getpid() % 100000
    marker = marker_path(volume, 0)
    marker.unlink(missing_ok=True)
    try:
        job = make_job(target="objectives_for_tests:dies_once", design={"volumes": [volume]})
        summary = run_sweep(job, TYPES, progress=None)
    finally:
        marker.unlink(missing_ok=True)
    assert summary.n_complete == 1 and summary.n_failed == 0
    (trial,) = open_study(job, create=False).get_trials()
    assert trial.user_attrs["retries"] == 1
    assert trial.value == pytest.approx(landscape(trial.user_attrs["proportions"], volume, 0))


def test_a_worker_that_always_dies_fails_after_two_retries(ray_session, make_job) -> None:
    job = make_job(target="objectives_for_tests:always_dies")
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_failed == 1
    (trial,) = open_study(job, create=False).get_trials()
    assert trial.state == TrialState.FAIL and trial.user_attrs["retries"] == 2
    assert "worker died 3 times" in trial.user_attrs["error"]


def test_journal_file_storage(ray_session, make_job, tmp_path) -> None:
    job = make_job(storage=str(tmp_path / "study.journal"), design={"balance": [0.3, 1.0]})
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 2
    assert (tmp_path / "study.journal").stat().st_size > 0
    assert run_sweep(job, TYPES, progress=None).n_run == 0
    assert states(job) == {"COMPLETE": 2}


def test_an_interrupted_driver_hands_its_trials_back(ray_session, make_job) -> None:
    job = make_job(design={"seeds": [0, 1, 2, 3]}, resources={"max_in_flight": 2})

    def stop_after_first(p: SweepProgress) -> None:
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        run_sweep(job, TYPES, progress=stop_after_first)
    after_stop = states(job)
    assert after_stop["COMPLETE"] == 1 and after_stop.get("RUNNING", 0) == 0
    interrupted = [
        t for t in open_study(job, create=False).get_trials() if t.state == TrialState.FAIL
    ]
    # the other trial in flight, and the one the freed worker took before the first line
    assert len(interrupted) == 2
    assert all("driver stopped (RuntimeError)" in t.user_attrs["error"] for t in interrupted)
    summary = run_sweep(job, TYPES, progress=None)
    assert summary.n_complete == 4 and summary.n_run == 3
    assert states(job) == {"COMPLETE": 4, "FAIL": 2}


def test_a_cluster_without_the_gpus_a_trial_asks_for_is_refused_before_enqueueing(
    ray_session: Any, make_job: Any
) -> None:
    job = make_job(resources={"gpus_per_trial": 1, "cpus_per_trial": 1, "max_in_flight": 1})
    with pytest.raises(UserError) as err:
        run_sweep(job, TYPES, progress=None)
    msg = str(err.value)
    assert "gpus_per_trial=1 but the Ray cluster has 2 CPUs, 0 GPUs" in msg
    assert "gpus_per_trial: 0" in msg and "Nothing was enqueued" in msg
    assert open_study(job, create=False).get_trials() == []


def test_the_mlflow_down_line_quotes_the_cause_whole(make_job: Any, capsys: Any) -> None:
    # MLflow's error quotes the request and urllib3's retries first: cut at 200 characters it
    # ended mid-word (`/api/2.0/mlflow/experi)`) before saying why.
    from conftest import free_port

    from ablate.sweep.driver import open_sweep_run

    port = free_port()  # nothing listens there
    job = make_job(study="mlflow-down-line", tracking=f"http://127.0.0.1:{port}")
    assert open_sweep_run(job, "uid") is None
    out = capsys.readouterr().out
    assert f"MLflow at http://127.0.0.1:{port} does not answer (" in out
    assert "Connection refused); the sweep goes on" in out and "/api/" not in out


def test_a_cause_too_long_is_cut_between_words() -> None:
    from ablate.errors import cause_line

    words = "the server went away " * 20
    line = cause_line(RuntimeError(words + "\nsecond line"))
    assert len(line) <= 200 and line.endswith("...") and words.startswith(line[:-3] + " ")


@pytest.mark.slow
def test_a_tracking_server_that_is_down_does_not_stop_the_sweep(
    ray_session: Any, make_job: Any, mlflow_server: str, capsys: Any
) -> None:
    """MLflow down: the sweep runs with Optuna as its record and says so; once the server
    answers, the next `ablate sweep` writes every missing run (and runs no trial again)."""
    from conftest import free_port

    port = free_port()  # nothing listens there; its URL with a password, which no line shows
    job = make_job(study="mlflow-down", tracking=f"http://u:secret@127.0.0.1:{port}",
                   design={"kind": "grid", **GRID})  # fmt: skip
    summary = run_sweep(job, TYPES)
    out = capsys.readouterr().out
    assert summary.n_complete == 12 and summary.n_run == 12
    assert f"MLflow at http://u:***@127.0.0.1:{port} does not answer" in out
    assert "secret" not in out  # (MLflow's own error quoted the URL with its password)
    assert "12 trial(s) have no run yet" in out
    back = make_job(study="mlflow-down", tracking=mlflow_server, design={"kind": "grid", **GRID})
    again = run_sweep(back, TYPES, progress=None)
    assert again.n_run == 0 and again.n_complete == 12
    parent = tracking.find_sweep_run(back)
    assert parent is not None
    finished = tracking.child_runs(back, parent, status="FINISHED")
    assert len(finished) == 12
