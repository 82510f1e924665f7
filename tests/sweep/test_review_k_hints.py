"""Review k: the commands ablate tells a user to run keep the `--set` overrides the job was
read with. Printed without them, `ablate sweep JOB` opened the job's own study, not the one
`--set study=X` named: the resume or the proposals never ran."""

from __future__ import annotations

from pathlib import Path

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
