"""Review k. The commands ablate tells a user to run keep the `--set` overrides the job was
read with. Printed without them, `ablate sweep JOB` opened the job's own study, not the one
`--set study=X` named: the resume or the proposals never ran."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from ablate.analysis.page import _proposals
from ablate.analysis.surrogates import Proposal
from ablate.config import read_job
from ablate.study import open_study
from ablate.sweep import study_status


def one_point_job(path: Path, store: Path) -> Path:
    """A one-trial sim job at `path`, its study in `store`."""
    job_text = {
        "study": "base",
        "storage": f"sqlite:///{store}/optuna.db",
        "task_types": ["a", "b"],
        "objective": {"kind": "sim", "metric": "score"},
        "design": {"kind": "grid", "volumes": [100], "balance": [1.0], "seeds": [0]},
    }
    path.write_text(yaml.safe_dump(job_text))
    return path


def test_the_hints_name_the_overrides_of_the_study_they_are_about(tmp_path: Path) -> None:
    path = one_point_job(tmp_path / "job.yaml", tmp_path)
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


# review q, findings 1 and 13: the commands report.html suggests (and its MLflow artifact
# holds) copied each `--set` value as given, a storage password included, and left the job's
# path unquoted, so a path with spaces pasted as three arguments
def test_suggested_commands_mask_passwords_and_paste_as_one_argument(tmp_path: Path) -> None:
    folder = tmp_path / "sp ace" / "ünï cødé"
    folder.mkdir(parents=True)
    path = one_point_job(folder / "jöb.yaml", tmp_path)
    url = "postgresql://postgres:PGSECRET9@127.0.0.1:5432/test"
    job = read_job(path, ["study=q", f"storage={url}", "tracking=http://bob:QSECRET3@h:5000"])
    proposal = Proposal({"a": 0.5, "b": 0.5}, 100.0, 0.5, 0.4, 0.6, "gp")
    page = "".join(_proposals(job, "score", [proposal], ""))
    assert "SECRET" not in page and "SECRET" not in job.command("sweep")
    assert "put it back" in page
    words = shlex.split(job.command("propose"))
    assert words[:3] == ["ablate", "propose", str(path)]
    assert "storage=postgresql://postgres:***@127.0.0.1:5432/test" in words
    assert "put it back" not in "".join(_proposals(read_job(path), "score", [proposal], ""))
