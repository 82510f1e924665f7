"""Review k. The commands ablate tells a user to run keep the `--set` overrides the job was
read with. Printed without them, `ablate sweep JOB` opened the job's own study, not the one
`--set study=X` named: the resume or the proposals never ran."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.config import read_job
from ablate.study import open_study
from ablate.sweep import study_status


def test_the_hints_name_the_overrides_of_the_study_they_are_about(tmp_path: Path) -> None:
    path = tmp_path / "job.yaml"
    job_text = {
        "study": "base",
        "storage": f"sqlite:///{tmp_path}/optuna.db",
        "task_types": ["a", "b"],
        "objective": {"kind": "sim", "metric": "score"},
        "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]},
    }
    path.write_text(yaml.safe_dump(job_text))
    job = read_job(path, ["study=hint x", "design.seeds=[0]"])
    assert job.study == "hint x"
    assert job.command("sweep", "job.yaml") == (
        "ablate sweep job.yaml --set 'study=hint x' --set 'design.seeds=[0]'"
    )
    assert read_job(path).command("status") == f"ablate status {path}"
    study = open_study(job)
    study.enqueue_trial({})
    study.ask()  # a driver that died with this trial in flight
    text = study_status(job)
    assert f"`ablate sweep {path} --set 'study=hint x' --set 'design.seeds=[0]'` marks them" in text


def test_a_finished_study_rerun_does_not_start_ray(make_job: Any, monkeypatch: Any) -> None:
    """The rerun of a finished demo started and stopped a local Ray (10-20 s) to say "0 to
    run"; with nothing to train it no longer touches Ray. One point put back to waiting: Ray
    is started again (here: refused, to show it was asked for)."""
    from objectives_for_tests import landscape

    from ablate.plan import design_mixtures
    from ablate.study import check_settings, enqueue_design, job_settings
    from ablate.study.optuna_fast import pop_waiting, waiting_ids
    from ablate.sweep import driver

    job = make_job(design={"kind": "grid", "volumes": [100], "balance": [0.5, 1.0], "seeds": [0]})
    types = ["caption", "count", "compare"]
    study = open_study(job)
    level, _ = check_settings(study, job, job_settings(job, types))
    enqueue_design(study, design_mixtures(job, types), level=level)
    queue = waiting_ids(study)
    while (trial := pop_waiting(study, queue)) is not None:
        a = trial.user_attrs
        study.tell(trial, landscape(a["proportions"], a["volume"], a["seed"]))

    def no_ray(*args: Any) -> Any:
        raise AssertionError("Ray was started")

    monkeypatch.setattr(driver, "cluster_for", no_ray)
    summary = driver.run_sweep(job, types, progress=None)
    assert summary.n_run == 0 and summary.n_complete == 2
    grown = make_job(design={"kind": "grid", "volumes": [100, 200], "balance": [0.5, 1.0],
                             "seeds": [0]})  # fmt: skip
    with pytest.raises(AssertionError, match="Ray was started"):
        driver.run_sweep(grown, types, progress=None)
