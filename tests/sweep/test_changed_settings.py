"""`ablate sweep` on a study whose trials were trained with other settings: refused before any
work (no Ray, no MLflow run, no trial), or with `--allow-changed-settings` run as a new level."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from objectives_for_tests import landscape

from ablate import tracking
from ablate.cli.main import main
from ablate.config import JobSpec
from ablate.errors import UserError
from ablate.plan import design_mixtures, load_job
from ablate.study import check_settings, job_settings, open_study
from ablate.study.optuna_fast import pop_waiting, waiting_ids
from ablate.sweep import driver, run_sweep
from ablate.sweep.driver import enqueue

TYPES = ["caption", "count", "compare"]
GRID = {"volumes": [100, 400], "balance": [0.5, 1.0], "seeds": [0]}


def previous_sweep(job: JobSpec) -> None:
    """A finished sweep of the job, without Ray: checked, enqueued, every trial told."""
    study = open_study(job)
    level, _ = check_settings(study, job, job_settings(job, TYPES))
    enqueue(job, study, design_mixtures(job, TYPES), TYPES, level)
    queue = waiting_ids(study)
    while (trial := pop_waiting(study, queue)) is not None:
        a = trial.user_attrs
        study.tell(trial, landscape(a["proportions"], a["volume"], a["seed"]))


@pytest.fixture
def no_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """Starting Ray or the sweep's MLflow run fails the test (whether or not a Ray is up)."""

    def boom(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(driver, "cluster_for", boom)
    monkeypatch.setattr(driver, "start_sweep", boom)


def test_run_sweep_refuses_changed_settings_before_any_work(
    make_job: Callable[..., JobSpec], no_work: None
) -> None:
    job = make_job(design=GRID)
    previous_sweep(job)
    changed = make_job(design={**GRID, "seeds": [0, 1, 2]}, objective={"direction": "minimize"})
    with pytest.raises(UserError, match=r"direction: study has maximize, this job has minimize"):
        run_sweep(changed, TYPES, progress=None)
    assert tracking.find_sweep_run(changed) is None  # no MLflow run either
    assert len(open_study(job, create=False).get_trials()) == 4


def test_the_cli_refusal_is_one_line_and_names_the_ways_out(
    tmp_path: Path, mlflow_template: Path, capsys: pytest.CaptureFixture[str], no_work: None
) -> None:
    shutil.copyfile(mlflow_template, tmp_path / "mlflow.db")
    path = tmp_path / "job.yaml"
    path.write_text(
        "study: demo\nstorage: sqlite:///optuna.db\ntracking: sqlite:///mlflow.db\n"
        "task_types: [caption, count, compare]\n"
        "objective: {kind: python, target: 'objectives_for_tests:landscape', metric: score}\n"
        "train: {lr: 5.0e-3}\n"
        "design: {kind: grid, volumes: [100, 400], balance: [0.5, 1.0], seeds: [0, 1]}\n"
    )
    previous_sweep(load_job(path))
    assert main(["sweep", str(path), "--set", "objective.direction=minimize"]) == 2
    _, err = capsys.readouterr()
    assert err.startswith("ablate: error: study `demo` in sqlite:///") and "Traceback" not in err
    assert "objective.direction: study has maximize, this job has minimize" in err
    assert "--set study=NAME" in err
    assert f"ablate sweep {path} --allow-changed-settings" in err
    assert len(err.strip().splitlines()) == 1


def test_the_opt_in_runs_the_design_again_as_a_new_level(
    ray_session: Any, make_job: Callable[..., JobSpec]
) -> None:
    job = make_job(design=GRID)
    first = run_sweep(job, TYPES, progress=None)
    assert first.n_run == 4
    changed = make_job(design=GRID, objective={"direction": "minimize"})
    with pytest.raises(UserError, match=r"objective\.direction"):
        run_sweep(changed, TYPES, progress=None)

    second = run_sweep(changed, TYPES, progress=None, allow_changed_settings=True)
    assert second.n_run == 4 and second.settings_id != first.settings_id
    assert second.notes
    assert "objective.direction: study has maximize, they have minimize" in second.notes[0]
    trials = open_study(job, create=False).get_trials()
    by_level = {t.user_attrs["settings_id"] for t in trials}
    assert by_level == {first.settings_id, second.settings_id}
    children = tracking.child_runs(job, second.parent_run_id)
    assert sorted(r.data.params["settings"] for r in children) == sorted(
        t.user_attrs["settings_id"] for t in trials
    )
    # either level again, without the flag: accepted, nothing left to run
    assert run_sweep(changed, TYPES, progress=None).n_run == 0
    assert run_sweep(job, TYPES, progress=None).n_run == 0
